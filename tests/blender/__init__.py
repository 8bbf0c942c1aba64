"""Blender add-on tests: bpy runs in its own venv (.venv-bpy), driven from the main one."""
