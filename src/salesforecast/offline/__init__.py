"""The offline store: the feature tables as Parquet (local profile) or PostgreSQL tables."""
