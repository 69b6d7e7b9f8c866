"""Training the TFT: the DDP loop (`train`), artefacts and resume (`checkpoint`), local launch (`launch`)."""
