"""Leak-free feature engineering: sales-derived transforms per series and store-week facts."""
