"""Decoders: pixel decoders, the masked-attention mask decoder with query groups, prompt encoders."""
