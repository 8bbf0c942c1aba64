"""Pure numpy/Pillow imaging for game-ready assets (seams, PBR maps, mattes, atlases)."""
