"""Online forecasting: the prediction path shared by the CLI, the API and batch scoring."""
