"""Training: per-pair autoencoders (DF, LIAE) with DeepFaceLab SAEHD options."""
