using System.Collections.Generic;
using System.IO;
using UnityEditor;
using UnityEditor.U2D.Sprites;
using UnityEngine;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Slices an atlas texture into one sprite per frame of its <see cref="AtlasFrameMap"/>
    /// (Sprite Mode Multiple), through the Sprite Editor data provider API of the
    /// <c>com.unity.2d.sprite</c> package (<c>ISpriteEditorDataProvider</c>), which works in an
    /// <c>AssetPostprocessor.OnPreprocessTexture</c> and on an importer outside an import. It
    /// replaces <c>TextureImporter.spritesheet</c>, obsolete since Unity 2022.2; the name/file-id
    /// pairs (<c>ISpriteNameFileIdDataProvider</c>) are what Unity 2021.2 and later need for new
    /// sprites. Covers every Unity this package supports (2021.3 and later, Unity 6 included).
    /// </summary>
    internal static class SpriteSheet
    {
        /// <summary>Sets the importer's sprite rectangles: <c>STEM_FRAME</c>, pivot at the centre of
        /// the frame each was drawn in (of a trimmed sprite: its source's centre).</summary>
        public static void Slice(TextureImporter importer, AtlasFrameMap map)
        {
            importer.spriteImportMode = SpriteImportMode.Multiple;
            var factory = new SpriteDataProviderFactories();
            factory.Init();
            ISpriteEditorDataProvider provider = factory.GetSpriteEditorDataProviderFromObject(importer);
            provider.InitSpriteEditorDataProvider();
            string stem = Path.GetFileNameWithoutExtension(importer.assetPath);
            var rects = new List<SpriteRect>();
            var ids = new List<SpriteNameFileIdPair>();
            foreach (AtlasFrame frame in map.Frames)
            {
                var rect = new SpriteRect
                {
                    name = stem + "_" + frame.Name,
                    rect = new Rect(frame.X, map.UnityY(frame), frame.Width, frame.Height),
                    alignment = SpriteAlignment.Custom,
                    pivot = new Vector2(frame.PivotX, frame.PivotY),
                    spriteID = GUID.Generate(),
                };
                rects.Add(rect);
                ids.Add(new SpriteNameFileIdPair(rect.name, rect.spriteID));
            }
            provider.SetSpriteRects(rects.ToArray());
            var names = provider.GetDataProvider<ISpriteNameFileIdDataProvider>();
            if (names != null) names.SetNameFileIdPairs(ids);
            provider.Apply();
        }
    }
}
