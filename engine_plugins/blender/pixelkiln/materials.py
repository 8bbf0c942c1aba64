"""Materials from a generated texture set: albedo -> Base Color, normal -> Normal Map node ->
Normal, roughness -> Roughness, all into one Principled BSDF. Main thread only."""

from __future__ import annotations

import bpy

from .images import maps_of

PROP_TRANSPARENT = "pixelkiln_transparent"


def make_material(
    albedo: bpy.types.Image, name: str | None = None
) -> tuple[bpy.types.Material, list[str]]:
    """A new material wired from ``albedo`` and its maps; returns it and the missing maps."""
    maps = maps_of(albedo)
    mat = bpy.data.materials.new(name or albedo.name)
    mat.use_nodes = True
    tree = mat.node_tree
    nodes, links = tree.nodes, tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.location = (300, 300)

    base = _texture(nodes, albedo, "Albedo", (-300, 450))
    links.new(base.outputs["Color"], bsdf.inputs["Base Color"])
    if albedo.get(PROP_TRANSPARENT):
        links.new(base.outputs["Alpha"], bsdf.inputs["Alpha"])

    missing = []
    if "roughness" in maps:
        rough = _texture(nodes, maps["roughness"], "Roughness", (-300, 150))
        links.new(rough.outputs["Color"], bsdf.inputs["Roughness"])
    else:
        missing.append("roughness")
    if "normal" in maps:
        normal_tex = _texture(nodes, maps["normal"], "Normal", (-600, -150))
        normal_map = nodes.new("ShaderNodeNormalMap")
        normal_map.location = (-250, -150)
        links.new(normal_tex.outputs["Color"], normal_map.inputs["Color"])
        links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    else:
        missing.append("normal")
    return mat, missing


def _texture(
    nodes: bpy.types.Nodes, image: bpy.types.Image, label: str, location: tuple[int, int]
) -> bpy.types.ShaderNodeTexImage:
    node = nodes.new("ShaderNodeTexImage")
    node.image = image
    node.label = label
    node.location = location
    return node


def assign(mat: bpy.types.Material, objects: list[bpy.types.Object]) -> list[str]:
    """Make ``mat`` the active material of each object that can hold one; returns the names
    of the objects it went on."""
    done = []
    for obj in objects:
        data = getattr(obj, "data", None)
        if data is None or not hasattr(data, "materials"):
            continue
        if not obj.material_slots:
            data.materials.append(mat)
        else:
            obj.material_slots[obj.active_material_index].material = mat
        done.append(obj.name)
    return done
