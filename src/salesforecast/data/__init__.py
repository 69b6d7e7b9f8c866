"""Raw data: reading and validating the Kaggle files, and a synthetic generator in the same schema."""
