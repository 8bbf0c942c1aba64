using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEditor;
using Encoding = PixelKiln.V1.Encoding;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Saves results under the project's Assets folder: the files are written off the main
    /// thread with <see cref="AtomicFile"/> (hidden temp file, then rename, so a crash never
    /// leaves half an asset and the asset database never sees a partial file), then imported
    /// with <c>AssetDatabase.ImportAsset</c> and the import settings of
    /// <see cref="PixelKilnTexturePostprocessor"/>.
    /// </summary>
    internal static class AssetSaver
    {
        public const string DefaultFolder = OutputFolder.Default;

        /// <summary>Call from the main thread; the returned task resumes there.</summary>
        public static async Task<List<string>> SaveAsync(Result result, string folder, string name, Tiling tiling, bool sprite)
        {
            folder = CheckFolder(folder);
            string stem = UniqueStem(folder, Slug(name));
            IList<SavedFile> saved = await Task.Run(() => ResultFiles.Save(result, folder, stem));
            var imported = new List<string>();
            var hints = new Dictionary<string, ImportHint>();
            AssetDatabase.StartAssetEditing();
            try
            {
                foreach (SavedFile file in saved)
                {
                    string assetPath = file.Path.Replace('\\', '/');
                    if (file.Kind != SavedFileKind.AtlasFrames)
                    {
                        var hint = new ImportHint
                        {
                            Tiling = file.Kind == SavedFileKind.Atlas ? Tiling.None : tiling,
                            Sprite = sprite && file.Kind != SavedFileKind.Map,
                            IsMap = file.Kind == SavedFileKind.Map,
                            MapKind = file.MapKind,
                            Frames = sprite && file.Kind == SavedFileKind.Atlas ? Frames(result, assetPath) : null,
                        };
                        hints[assetPath] = hint;
                        PixelKilnTexturePostprocessor.Expect(assetPath, hint);
                    }
                    AssetDatabase.ImportAsset(assetPath, ImportAssetOptions.ForceUpdate);
                    imported.Add(assetPath);
                }
            }
            finally
            {
                AssetDatabase.StopAssetEditing();
                foreach (string path in imported) PixelKilnTexturePostprocessor.Forget(path);
            }
            // With parallel import (import worker processes) the postprocessor runs in another
            // process and cannot see the hints: apply them through the importer instead.
            foreach (KeyValuePair<string, ImportHint> entry in hints)
            {
                var importer = AssetImporter.GetAtPath(entry.Key) as TextureImporter;
                if (importer == null || importer.userData == entry.Value.Describe()) continue;
                PixelKilnTexturePostprocessor.Apply(importer, entry.Value);
                importer.SaveAndReimport();
            }
            return imported;
        }

        /// <summary>The atlas's frame map, or null (imported as one sprite) when it cannot be read.</summary>
        private static AtlasFrameMap Frames(Result result, string assetPath)
        {
            try
            {
                return AtlasFrameMap.Parse(result.Atlas.FramesJson);
            }
            catch (FormatException e)
            {
                UnityEngine.Debug.LogWarning("PixelKiln: " + assetPath + " is imported as one sprite, not sliced: " + e.Message);
                return null;
            }
        }

        /// <summary>Saves one encoded image (a live frame) as <c>FOLDER/NAME.png</c> and imports it.</summary>
        public static async Task<string> SaveImageAsync(Image image, string folder, string name)
        {
            folder = CheckFolder(folder);
            string stem = UniqueStem(folder, Slug(name));
            Encoding encoding = image.Encoding == Encoding.Unspecified ? Images.Detect(image.Data) : image.Encoding;
            string assetPath = folder + "/" + stem + Images.Extension(encoding);
            byte[] data = image.Data;
            await AtomicFile.WriteAllBytesAsync(assetPath, data);
            AssetDatabase.ImportAsset(assetPath, ImportAssetOptions.ForceUpdate);
            return assetPath;
        }

        /// <summary>A project-relative folder under Assets/, with forward slashes (<see cref="OutputFolder"/>).</summary>
        public static string CheckFolder(string folder) => OutputFolder.Check(folder);

        /// <summary>A file-name stem from a prompt: lowercase letters, digits and underscores, at most 40.</summary>
        public static string Slug(string text)
        {
            var slug = new StringBuilder();
            foreach (char c in (text ?? "").ToLowerInvariant())
            {
                if (slug.Length >= 40) break;
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) slug.Append(c);
                else if (slug.Length > 0 && slug[slug.Length - 1] != '_') slug.Append('_');
            }
            string result = slug.ToString().Trim('_');
            return result.Length == 0 ? "pixelkiln" : result;
        }

        private static string UniqueStem(string folder, string stem)
        {
            string candidate = stem;
            for (int n = 2; Taken(folder, candidate); n++) candidate = stem + "_" + n;
            return candidate;
        }

        private static bool Taken(string folder, string stem)
        {
            if (!Directory.Exists(folder)) return false;
            return Directory.GetFiles(folder, stem + ".*").Length > 0 || Directory.GetFiles(folder, stem + "_*").Length > 0;
        }
    }
}
