// Crash-safe file writing and saving results. Hand-written (not generated).

using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>
    /// Writes files so that a crash, a kill or a full disk never leaves half a file under the
    /// final name: the bytes go to a hidden temporary file in the same folder, are flushed to the
    /// disk, and the temporary file is then renamed over the target (an atomic replace on one
    /// volume). The temporary name starts with a dot and ends in <c>.tmp</c>, so Unity's asset
    /// database and Godot's importer ignore it while it is being written.
    /// </summary>
    /// <example>
    /// <code>
    /// AtomicFile.WriteAllBytes("Assets/PixelKiln/stone.png", result.Images[0].Image.Data);
    /// </code>
    /// </example>
    public static class AtomicFile
    {
        /// <summary>Writes <paramref name="data"/> to <paramref name="path"/> atomically (creates the folder).</summary>
        public static void WriteAllBytes(string path, byte[] data)
        {
            // Never awaits with useAsync false, so this completes before returning.
            WriteAsync(path, data, false, CancellationToken.None).GetAwaiter().GetResult();
        }

        /// <summary>Writes <paramref name="data"/> to <paramref name="path"/> atomically without blocking the caller.</summary>
        public static Task WriteAllBytesAsync(string path, byte[] data,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            return WriteAsync(path, data, true, cancellationToken);
        }

        private static async Task WriteAsync(string path, byte[] data, bool useAsync, CancellationToken cancellationToken)
        {
            if (data == null) throw new ArgumentNullException("data");
            string temp = Prepare(path);
            try
            {
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync))
                {
                    if (useAsync) await stream.WriteAsync(data, 0, data.Length, cancellationToken).ConfigureAwait(false);
                    else stream.Write(data, 0, data.Length);
                    stream.Flush(true);
                }
                Commit(temp, path);
            }
            catch
            {
                DeleteQuietly(temp);
                throw;
            }
        }

        /// <summary>The temporary file used for <paramref name="path"/>: hidden, same folder, unique.</summary>
        public static string TempPathFor(string path)
        {
            string folder = Path.GetDirectoryName(Path.GetFullPath(path));
            return Path.Combine(folder, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N").Substring(0, 12) + ".tmp");
        }

        private static string Prepare(string path)
        {
            if (string.IsNullOrEmpty(path)) throw new ArgumentException("path is required", "path");
            string folder = Path.GetDirectoryName(Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
            return TempPathFor(path);
        }

        private static void Commit(string temp, string path)
        {
            if (File.Exists(path))
            {
                File.Replace(temp, path, null, true);
                return;
            }
            try
            {
                File.Move(temp, path);
            }
            catch (IOException)
            {
                if (!File.Exists(path)) throw;
                File.Replace(temp, path, null, true);  // created meanwhile by someone else
            }
        }

        private static void DeleteQuietly(string path)
        {
            try
            {
                if (File.Exists(path)) File.Delete(path);
            }
            catch (Exception)
            {
                // Best effort: the original error matters more.
            }
        }
    }

    /// <summary>What one saved file holds.</summary>
    public enum SavedFileKind
    {
        /// <summary>A generated image (the albedo).</summary>
        Image = 0,
        /// <summary>A derived map (normal, height, roughness, AO) of an image.</summary>
        Map = 1,
        /// <summary>The atlas image packing every image of the request.</summary>
        Atlas = 2,
        /// <summary>The atlas frame map (TexturePacker "JSON (Hash)").</summary>
        AtlasFrames = 3,
    }

    /// <summary>One file written by <see cref="ResultFiles.Save"/>.</summary>
    public sealed class SavedFile
    {
        /// <summary>Where it was written.</summary>
        public string Path { get; internal set; }

        /// <summary>What it holds.</summary>
        public SavedFileKind Kind { get; internal set; }

        /// <summary>For <see cref="SavedFileKind.Map"/>: which map.</summary>
        public MapKind MapKind { get; internal set; }

        /// <summary>The image's index in the request (-1 for the atlas files).</summary>
        public int Index { get; internal set; }

        /// <summary>The seed of the image (0 for the atlas files).</summary>
        public ulong Seed { get; internal set; }

        /// <summary>The encoding of the bytes (<see cref="Encoding.Unspecified"/> for JSON).</summary>
        public Encoding Encoding { get; internal set; }
    }

    /// <summary>Saves a <see cref="Result"/> as files, each written with <see cref="AtomicFile"/>.</summary>
    public static class ResultFiles
    {
        /// <summary>
        /// Writes every image, derived map and atlas of <paramref name="result"/> into
        /// <paramref name="folder"/>, named like the <c>pixelkiln generate</c> CLI: one image
        /// <c>NAME.png</c> (maps <c>NAME_normal.png</c>, ...); several <c>NAME_0.png</c>,
        /// <c>NAME_1.png</c> (maps <c>NAME_0_normal.png</c>); atlas <c>NAME_atlas.png</c> and
        /// <c>NAME_atlas.json</c>. Existing files are replaced atomically. PNG results carry their
        /// recipe in the <c>pixelkiln</c> text chunk.
        /// </summary>
        public static IList<SavedFile> Save(Result result, string folder, string name)
        {
            if (result == null) throw new ArgumentNullException("result");
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("name is required", "name");
            var saved = new List<SavedFile>();
            bool several = result.Images.Count > 1;
            for (int i = 0; i < result.Images.Count; i++)
            {
                GeneratedImage generated = result.Images[i];
                if (generated.Image == null) continue;
                string stem = several ? name + "_" + generated.Index : name;
                saved.Add(Write(folder, stem, generated.Image, SavedFileKind.Image, MapKind.Unspecified,
                    (int)generated.Index, generated.Seed));
                foreach (DerivedMap map in generated.Maps)
                {
                    if (map.Image == null) continue;
                    saved.Add(Write(folder, stem + "_" + MapName(map.Kind), map.Image, SavedFileKind.Map, map.Kind,
                        (int)generated.Index, generated.Seed));
                }
            }
            if (result.Atlas != null && result.Atlas.Image != null)
            {
                saved.Add(Write(folder, name + "_atlas", result.Atlas.Image, SavedFileKind.Atlas, MapKind.Unspecified, -1, 0));
                string json = System.IO.Path.Combine(folder, name + "_atlas.json");
                AtomicFile.WriteAllBytes(json, new System.Text.UTF8Encoding(false).GetBytes(result.Atlas.FramesJson));
                saved.Add(new SavedFile
                {
                    Path = json, Kind = SavedFileKind.AtlasFrames, Index = -1, Encoding = Encoding.Unspecified,
                });
            }
            return saved;
        }

        /// <summary>The file-name suffix of a map kind: <c>normal</c>, <c>height</c>, <c>roughness</c>, <c>ao</c>.</summary>
        public static string MapName(MapKind kind)
        {
            switch (kind)
            {
                case MapKind.Normal: return "normal";
                case MapKind.Height: return "height";
                case MapKind.Roughness: return "roughness";
                case MapKind.Ao: return "ao";
                default: return "map" + (int)kind;
            }
        }

        private static SavedFile Write(string folder, string stem, Image image, SavedFileKind kind, MapKind mapKind,
            int index, ulong seed)
        {
            Encoding encoding = image.Encoding == Encoding.Unspecified ? Images.Detect(image.Data) : image.Encoding;
            string path = System.IO.Path.Combine(folder, stem + Images.Extension(encoding));
            AtomicFile.WriteAllBytes(path, image.Data);
            return new SavedFile { Path = path, Kind = kind, MapKind = mapKind, Index = index, Seed = seed, Encoding = encoding };
        }
    }
}
