// The window's live panel: a live session fed by the scene view or a texture, its frames shown
// as they come, and the last frame saved on request.

using System;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEditor;
using UnityEngine;

namespace PixelKiln.Unity.Editor
{
    public sealed partial class PixelKilnWindow
    {
        private LiveSettings CurrentLiveSettings()
        {
            var settings = new LiveSettings { Prompt = prompt, Strength = liveStrength };
            if (!string.IsNullOrEmpty(negativePrompt)) settings.NegativePrompt = negativePrompt;
            if (!string.IsNullOrEmpty(model)) settings.Model = model;
            if (steps > 0) settings.Steps = (uint)steps;
            if (width > 0) settings.Width = (uint)width;
            if (height > 0) settings.Height = (uint)height;
            if (!randomSeed) settings.Seed = (ulong)Math.Max(0, seed);
            settings.Tiling = tiling;
            // Raw RGBA8 frames: no PNG encode on the daemon, no decode here (Kiln.Decode flips the
            // rows into Unity's bottom-up order and loads them with LoadRawTextureData).
            settings.OutputEncoding = liveRawFrames ? Encoding.RawRgba8 : Encoding.Png;
            settings.StreamBatch = liveStreamBatch;
            settings.TinyAutoencoder = liveTinyAutoencoder;
            settings.SimilarSkipThreshold = liveSimilarSkip;
            settings.SimilarSkipMax = (uint)Math.Max(0, liveSimilarSkipMax);
            return settings;
        }

        private async Task StartLiveAsync()
        {
            wantConnected = true;
            try
            {
                live = await EnsureClient().OpenLiveAsync(CurrentLiveSettings());
                live.FrameReceived += OnLiveFrame;
                live.Ended += OnLiveEnded;
                capture = new LiveCapture();
                nextLiveSend = 0;
                SetMessage("Live: sending " + (liveFromSceneView ? "the scene view" : "the texture") + " at up to "
                    + liveFps + " frames/s; the daemon works on the newest.", MessageType.Info);
            }
            catch (Exception e)
            {
                SetError(e);
            }
            Repaint();
        }

        private void SendLiveInput()
        {
            int side = 512;
            int w = width > 0 ? width : side;
            int h = height > 0 ? height : side;
            byte[] jpeg = liveFromSceneView ? capture.CaptureSceneView(w, h) : capture.CaptureTexture(liveSource, w, h);
            if (jpeg == null)
            {
                liveStats = liveFromSceneView ? "No scene view open." : "Pick a source texture.";
                return;
            }
            try
            {
                live.Send(jpeg, CurrentLiveSettings());
            }
            catch (Exception e)
            {
                SetError(e);
                StopLive();
            }
        }

        private void OnLiveFrame(LiveFrame frame)
        {
            if (LiveOptions.HasImage(frame))
            {
                liveTexture = Kiln.Decode(frame.Image, false, Tiling.None, liveTexture);
                lastLiveImage = frame.Image;
            }
            liveStats = LiveOptions.Describe(frame);
            Repaint();
        }

        private void OnLiveEnded(Exception error)
        {
            if (error != null) SetError(error);
            live = null;
            if (capture != null) capture.Dispose();
            capture = null;
            Repaint();
        }

        private void StopLive()
        {
            if (live != null)
            {
                LiveSession ending = live;
                live = null;
                Fire(ending.End());
            }
            if (capture != null) capture.Dispose();
            capture = null;
        }

        private void DrawLive()
        {
            EditorGUILayout.LabelField("Live", EditorStyles.boldLabel);
            liveFromSceneView = EditorGUILayout.Toggle(new GUIContent("From scene view", "Render the scene view camera; off: use a texture"), liveFromSceneView);
            if (!liveFromSceneView)
                liveSource = (Texture)EditorGUILayout.ObjectField("Source texture", liveSource, typeof(Texture), false);
            liveStrength = EditorGUILayout.Slider(new GUIContent("Strength", "How much of the input to change"), liveStrength, 0.05f, 1f);
            liveFps = EditorGUILayout.Slider(new GUIContent("Max frames/s", "How often inputs are sent"), liveFps, 1f, 30f);
            liveRawFrames = EditorGUILayout.Toggle(new GUIContent("Fast frames (raw)", "Raw RGBA8 frames: no PNG encode or decode"), liveRawFrames);
            liveStreamBatch = EditorGUILayout.Toggle(new GUIContent("Stream batch", "Batch the steps of consecutive frames (a frame answers an earlier input)"), liveStreamBatch);
            liveTinyAutoencoder = EditorGUILayout.Toggle(new GUIContent("Tiny autoencoder", "Encode and decode with the model's tiny autoencoder, when it has one"), liveTinyAutoencoder);
            liveSimilarSkip = EditorGUILayout.Slider(new GUIContent("Similar skip", "Skip inputs differing by less than this fraction (0: exact repeats only)"), liveSimilarSkip, 0f, 0.2f);
            liveSimilarSkipMax = EditorGUILayout.IntSlider(new GUIContent("Similar skip max", "At most this many skipped in a row (0: no limit)"), liveSimilarSkipMax, 0, 100);
            EditorGUILayout.BeginHorizontal();
            GUI.enabled = busy == null;
            if (live == null && GUILayout.Button("Start live")) Fire(StartLiveAsync());
            if (live != null && GUILayout.Button("Stop live")) StopLive();
            GUI.enabled = lastLiveImage != null;
            if (GUILayout.Button("Save frame", GUILayout.Width(90))) Fire(SaveLiveFrameAsync());
            GUI.enabled = true;
            EditorGUILayout.EndHorizontal();
            if (liveStats.Length > 0) EditorGUILayout.LabelField(liveStats, EditorStyles.miniLabel);
            DrawImage(liveTexture);
        }

        private async Task SaveLiveFrameAsync()
        {
            try
            {
                Image image = lastLiveImage.Encoding == Encoding.RawRgba8
                    ? new Image { Data = liveTexture.EncodeToPNG(), Encoding = Encoding.Png }
                    : lastLiveImage;
                string path = await AssetSaver.SaveImageAsync(image, folder, prompt + "_live");
                SetMessage("Saved " + path + ".", MessageType.Info);
            }
            catch (Exception e)
            {
                SetError(e);
            }
        }
    }
}
