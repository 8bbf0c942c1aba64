// The window's generate panel: the request from the settings, progress and previews, cancel, and
// the results saved under Assets with their import settings.

using System;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEditor;
using UnityEngine;
using Rect = UnityEngine.Rect;   // PixelKiln.V1 has a Rect too (trim boxes)

namespace PixelKiln.Unity.Editor
{
    public sealed partial class PixelKilnWindow
    {
        private static readonly int[] Sizes = { 0, 64, 128, 256, 512, 768, 1024, 1536, 2048 };
        private static readonly string[] SizeNames = { "model native", "64", "128", "256", "512", "768", "1024", "1536", "2048" };

        private GenerateRequest BuildRequest()
        {
            var options = new KilnOptions
            {
                Model = model,
                NegativePrompt = negativePrompt,
                Width = width,
                Height = height,
                Steps = steps,
                Seed = randomSeed ? -1 : seed,
                Tiling = tiling,
                Transparent = transparent,
                Count = count,
                Atlas = atlas && count > 1,
                PreviewEveryNSteps = 1,
            };
            if (mapNormal) options.Maps.Add(MapKind.Normal);
            if (mapHeight) options.Maps.Add(MapKind.Height);
            if (mapRoughness) options.Maps.Add(MapKind.Roughness);
            if (mapAo) options.Maps.Add(MapKind.Ao);
            return options.ToRequest(prompt);
        }

        private async Task GenerateAsync()
        {
            if (generation != null) return;
            generation = new CancellationTokenSource();
            wantConnected = true;
            progress = 0f;
            progressText = "Sending...";
            Tiling requestedTiling = tiling;
            bool sprite = transparent;
            string name = prompt;
            var events = new GenerateHandlers
            {
                Accepted = a => progressText = "Accepted: seed " + a.Seed + ", " + a.Width + "x" + a.Height + ", " + a.Steps + " steps",
                Queued = q => progressText = "Queued: position " + q.Position + " of " + q.QueueDepth,
                Progress = p =>
                {
                    progress = p.Total == 0 ? 0f : (float)p.Step / p.Total;
                    progressText = "Step " + p.Step + " / " + p.Total;
                    Repaint();
                },
                Preview = p =>
                {
                    if (p.Images.Count > 0) preview = Kiln.Decode(p.Images[0], false, Tiling.None, preview);
                    Repaint();
                },
            };
            try
            {
                Result result = await EnsureClient().GenerateAsync(BuildRequest(), events, generation.Token);
                progress = 1f;
                progressText = "Saving...";
                Repaint();
                if (result.Images.Count > 0) preview = Kiln.Decode(result.Images[0].Image, false, requestedTiling, preview);
                lastSaved = await AssetSaver.SaveAsync(result, folder, name, requestedTiling, sprite);
                string seeds = result.Images.Count > 0 ? " (seed " + result.Images[0].Seed + ")" : "";
                SetMessage("Saved " + lastSaved.Count + " file(s) under " + AssetSaver.CheckFolder(folder) + seeds + " in "
                    + Math.Round(result.Timings != null ? result.Timings.TotalMs : 0) + " ms.", MessageType.Info);
                if (lastSaved.Count > 0)
                    EditorGUIUtility.PingObject(AssetDatabase.LoadAssetAtPath<Texture2D>(lastSaved[0]));
            }
            catch (Exception e)
            {
                SetError(e);
            }
            finally
            {
                generation.Dispose();
                generation = null;
                progress = 0f;
                progressText = "";
                Repaint();
            }
        }

        private void DrawGenerate()
        {
            EditorGUILayout.LabelField("Generate", EditorStyles.boldLabel);
            EditorGUILayout.LabelField("Prompt");
            prompt = EditorGUILayout.TextArea(prompt, GUILayout.MinHeight(40));
            negativePrompt = EditorGUILayout.TextField("Negative prompt", negativePrompt);
            if (modelNames.Length > 1)
            {
                int index = Math.Max(0, Array.IndexOf(modelNames, model));
                index = EditorGUILayout.Popup("Model", index, ModelLabels());
                model = modelNames[index];
            }
            else
            {
                model = EditorGUILayout.TextField(new GUIContent("Model", "empty: the daemon's default"), model);
            }
            width = EditorGUILayout.IntPopup("Width", width, SizeNames, Sizes);
            height = EditorGUILayout.IntPopup("Height", height, SizeNames, Sizes);
            steps = EditorGUILayout.IntSlider(new GUIContent("Steps", "0: the model's default"), steps, 0, 50);
            EditorGUILayout.BeginHorizontal();
            randomSeed = EditorGUILayout.ToggleLeft("Random seed", randomSeed, GUILayout.Width(110));
            GUI.enabled = !randomSeed;
            seed = EditorGUILayout.LongField(seed);
            GUI.enabled = true;
            EditorGUILayout.EndHorizontal();
            tiling = (Tiling)EditorGUILayout.EnumPopup(new GUIContent("Tiling", "Seamless on these axes (imported with wrap mode Repeat)"), tiling);
            transparent = EditorGUILayout.Toggle(new GUIContent("Transparent sprite", "RGBA on a matted background (imported as a Sprite)"), transparent);
            EditorGUILayout.BeginHorizontal();
            EditorGUILayout.PrefixLabel("Maps");
            mapNormal = EditorGUILayout.ToggleLeft("Normal", mapNormal, GUILayout.Width(70));
            mapHeight = EditorGUILayout.ToggleLeft("Height", mapHeight, GUILayout.Width(70));
            mapRoughness = EditorGUILayout.ToggleLeft("Roughness", mapRoughness, GUILayout.Width(90));
            mapAo = EditorGUILayout.ToggleLeft("AO", mapAo, GUILayout.Width(50));
            EditorGUILayout.EndHorizontal();
            count = EditorGUILayout.IntSlider("Count", count, 1, 8);
            GUI.enabled = count > 1;
            atlas = EditorGUILayout.Toggle(new GUIContent("Atlas", "Pack the images into one atlas + TexturePacker JSON"), atlas);
            GUI.enabled = true;
            folder = EditorGUILayout.TextField(new GUIContent("Save to", "A folder under Assets/"), folder);

            EditorGUILayout.BeginHorizontal();
            GUI.enabled = generation == null && busy == null && !string.IsNullOrEmpty(prompt);
            if (GUILayout.Button("Generate")) Fire(GenerateAsync());
            GUI.enabled = generation != null;
            if (GUILayout.Button("Cancel", GUILayout.Width(80))) generation.Cancel();
            GUI.enabled = true;
            EditorGUILayout.EndHorizontal();
            if (generation != null)
            {
                Rect bar = GUILayoutUtility.GetRect(18, 18, GUILayout.ExpandWidth(true));
                EditorGUI.ProgressBar(bar, progress, progressText);
            }
            DrawImage(preview);
            foreach (string path in lastSaved) EditorGUILayout.LabelField(path, EditorStyles.miniLabel);
        }

        private string[] ModelLabels()
        {
            var labels = new string[modelNames.Length];
            for (int i = 0; i < modelNames.Length; i++) labels[i] = i == 0 ? "(daemon default)" : modelNames[i];
            return labels;
        }

        /// <summary>A preview or live frame, scaled to fit the window's width (nothing when null).</summary>
        private static void DrawImage(Texture texture)
        {
            if (texture == null) return;
            Rect area = GUILayoutUtility.GetRect(128, 256, GUILayout.ExpandWidth(true));
            GUI.DrawTexture(area, texture, ScaleMode.ScaleToFit, true);
        }
    }
}
