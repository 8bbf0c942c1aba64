"""Training PixelKiln's own texture-and-sprite model, one module per stage: the recipe, the
data, the VAE, the tokenizer and text encoder, the UNet, saving, and the run that ties them
together. ``tools/train_texture_model.py`` is the command line."""
