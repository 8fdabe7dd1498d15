"""The wearer's page (``make demo``): record your own gestures, teach the model, see it recognise you."""
