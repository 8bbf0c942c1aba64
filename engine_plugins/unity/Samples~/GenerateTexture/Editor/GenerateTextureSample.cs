using System;
using System.IO;
using PixelKiln.Unity;
using PixelKiln.V1;
using UnityEditor;
using UnityEngine;

namespace PixelKiln.Samples
{
    /// <summary>
    /// Tools > PixelKiln Samples > Generate Texture: asks a running daemon (<c>pixelkiln serve</c>,
    /// or Window > PixelKiln > Start daemon) for a seamless texture with the script API and saves
    /// it as a PNG asset. The await returns to the main thread, so the asset calls are safe there.
    /// </summary>
    public static class GenerateTextureSample
    {
        private const string Folder = "Assets/PixelKiln Samples";

        [MenuItem("Tools/PixelKiln Samples/Generate Texture")]
        public static async void GenerateTexture()
        {
            Texture2D texture = null;
            try
            {
                var options = new KilnOptions { Width = 256, Height = 256, Tiling = Tiling.Xy };
                texture = await Kiln.GenerateTextureAsync("mossy cobblestone", options);
                Directory.CreateDirectory(Folder);
                string path = Folder + "/mossy_cobblestone.png";
                File.WriteAllBytes(path, texture.EncodeToPNG());
                AssetDatabase.ImportAsset(path, ImportAssetOptions.ForceUpdate);
                Debug.Log("PixelKiln sample: saved " + path);
            }
            catch (Exception e)
            {
                Debug.LogError("PixelKiln sample: " + e.Message
                    + " (is the daemon running at " + Kiln.Url + "? See the package README, Troubleshooting.)");
            }
            finally
            {
                Kiln.DestroyTexture(texture);
            }
        }
    }
}
