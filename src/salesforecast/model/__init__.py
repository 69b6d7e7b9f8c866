"""The Temporal Fusion Transformer (`tft`), its loss (`losses`) and its input windows (`windows`)."""
