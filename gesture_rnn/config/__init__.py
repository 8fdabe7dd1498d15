"""The config's rules beyond Hydra's: value ranges checked before anything runs (``checks``,
``rules``) and the resolvers ``conf/`` uses (``resolvers``)."""
