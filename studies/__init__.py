"""The studies behind reports/*.md: each ``make`` target that writes a report has its driver and
its report writer here, outside the installed package (``python -m studies.<name>``)."""
