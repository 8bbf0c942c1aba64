using System.Collections.Generic;
using PixelKiln.V1;
using UnityEditor;
using UnityEngine;

namespace PixelKiln.Unity.Editor
{
    /// <summary>How a saved file should be imported.</summary>
    internal sealed class ImportHint
    {
        public Tiling Tiling;
        public bool Sprite;
        public bool IsMap;
        public MapKind MapKind;

        /// <summary>For a sprite atlas: its frames, imported as a sliced sprite sheet.</summary>
        public AtlasFrameMap Frames;

        public string Describe()
        {
            string kind = IsMap ? "map:" + MapKind
                : Sprite && Frames != null ? "sprite-sheet:" + Frames.Frames.Count
                : Sprite ? "sprite" : "texture";
            return "pixelkiln " + kind + " tiling:" + Tiling;
        }
    }

    /// <summary>
    /// Sets the import settings of the textures PixelKiln saves, in the same import (no second
    /// re-import): wrap mode Repeat on the tiled axes, Sprite + alpha is transparency for
    /// transparent sprites, a sliced sprite sheet (one sprite per frame, <see cref="SpriteSheet"/>)
    /// for the atlas of transparent sprites, Normal Map for normal maps, linear (not sRGB) for
    /// height, roughness and AO. It acts only on paths registered by <see cref="AssetSaver"/> just before
    /// <c>AssetDatabase.ImportAsset</c>; later re-imports keep what is stored in the .meta file,
    /// so hand-made changes are never overwritten.
    /// </summary>
    internal sealed class PixelKilnTexturePostprocessor : AssetPostprocessor
    {
        private static readonly Dictionary<string, ImportHint> pending = new Dictionary<string, ImportHint>();

        public static void Expect(string assetPath, ImportHint hint)
        {
            lock (pending) pending[assetPath] = hint;
        }

        public static void Forget(string assetPath)
        {
            lock (pending) pending.Remove(assetPath);
        }

        private void OnPreprocessTexture()
        {
            ImportHint hint;
            lock (pending)
            {
                if (!pending.TryGetValue(assetPath, out hint)) return;
                pending.Remove(assetPath);
            }
            var importer = assetImporter as TextureImporter;
            if (importer == null) return;
            Apply(importer, hint);
        }

        internal static void Apply(TextureImporter importer, ImportHint hint)
        {
            bool repeatU = hint.Tiling == Tiling.X || hint.Tiling == Tiling.Xy;
            bool repeatV = hint.Tiling == Tiling.Y || hint.Tiling == Tiling.Xy;
            importer.wrapModeU = repeatU ? TextureWrapMode.Repeat : TextureWrapMode.Clamp;
            importer.wrapModeV = repeatV ? TextureWrapMode.Repeat : TextureWrapMode.Clamp;
            if (hint.IsMap)
            {
                if (hint.MapKind == MapKind.Normal)
                {
                    importer.textureType = TextureImporterType.NormalMap;
                }
                else
                {
                    importer.textureType = TextureImporterType.Default;
                    importer.sRGBTexture = false;   // height, roughness, AO are data, not colour
                }
            }
            else if (hint.Sprite)
            {
                importer.textureType = TextureImporterType.Sprite;
                importer.spriteImportMode = SpriteImportMode.Single;
                importer.alphaSource = TextureImporterAlphaSource.FromInput;
                importer.alphaIsTransparency = true;
                importer.mipmapEnabled = false;
                if (hint.Frames != null) SpriteSheet.Slice(importer, hint.Frames);
            }
            else
            {
                importer.textureType = TextureImporterType.Default;
                importer.sRGBTexture = true;
            }
            importer.userData = hint.Describe();
        }
    }
}
