using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEditor;
using UnityEngine;
using Rect = UnityEngine.Rect;   // PixelKiln.V1 has a Rect too (trim boxes)

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Window > PixelKiln: connection and daemon health, prompt and asset options, progress and
    /// previews, cancel, results saved under Assets/PixelKiln with import settings, and a live
    /// mode fed by a texture or the scene view camera. Nothing here blocks the editor: network
    /// calls are awaited (continuations return to the main thread), client callbacks are drained
    /// by <see cref="EditorMainThread"/>, and periodic work runs from EditorApplication.update.
    /// </summary>
    public sealed class PixelKilnWindow : EditorWindow
    {
        private const string ExecutableKey = "PixelKiln.Executable";
        private static readonly int[] Sizes = { 0, 64, 128, 256, 512, 768, 1024, 1536, 2048 };
        private static readonly string[] SizeNames = { "model native", "64", "128", "256", "512", "768", "1024", "1536", "2048" };
        private const double HealthPollSeconds = 2.0;
        private const double MaxReconnectSeconds = 30.0;

        // Settings (serialized: they survive domain reloads and editor restarts with the layout).
        [SerializeField] private string host = "127.0.0.1";
        [SerializeField] private int wsPort = 50052;
        [SerializeField] private int grpcPort = 50051;
        [SerializeField] private bool autoReconnect = true;
        [SerializeField] private string daemonModel = "";
        [SerializeField] private string daemonArguments = "";
        [SerializeField] private string prompt = "mossy cobblestone";
        [SerializeField] private string negativePrompt = "";
        [SerializeField] private string model = "";
        [SerializeField] private int width = 512;
        [SerializeField] private int height = 512;
        [SerializeField] private int steps;
        [SerializeField] private bool randomSeed = true;
        [SerializeField] private long seed = 42;
        [SerializeField] private Tiling tiling = Tiling.None;
        [SerializeField] private bool transparent;
        [SerializeField] private bool mapNormal;
        [SerializeField] private bool mapHeight;
        [SerializeField] private bool mapRoughness;
        [SerializeField] private bool mapAo;
        [SerializeField] private int count = 1;
        [SerializeField] private bool atlas;
        [SerializeField] private string folder = AssetSaver.DefaultFolder;
        [SerializeField] private bool liveFromSceneView = true;
        [SerializeField] private Texture liveSource;
        [SerializeField] private float liveStrength = 0.5f;
        [SerializeField] private float liveFps = 8f;

        // State of this editor session (not serialized).
        private string executable;
        private DaemonSecurity security;
        private PixelKilnClient client;
        private string clientUrl;
        private bool wantConnected;
        private bool connecting;
        private string busy;
        private double nextHealthPoll;
        private double nextDaemonCheck;
        private bool daemonRunning;
        private bool polling;
        private double reconnectAt;
        private double reconnectDelay = 1.0;
        private StatusResponse status;
        private string[] modelNames = new string[0];
        private string message = "Not connected. Connect to a running daemon, or start one.";
        private MessageType messageType = MessageType.Info;
        private CancellationTokenSource generation;
        private float progress;
        private string progressText = "";
        private Texture2D preview;
        private List<string> lastSaved = new List<string>();
        private LiveSession live;
        private LiveCapture capture;
        private double nextLiveSend;
        private Texture2D liveTexture;
        private Image lastLiveImage;
        private string liveStats = "";
        private Vector2 scroll;

        [MenuItem("Window/PixelKiln")]
        public static void Open()
        {
            GetWindow<PixelKilnWindow>("PixelKiln");
        }

        private string Url
        {
            get { return (security ?? (security = DaemonSecurity.Load())).Scheme + "://" + host + ":" + wsPort + "/v1"; }
        }

        private void OnEnable()
        {
            executable = EditorPrefs.GetString(ExecutableKey, "pixelkiln");
            security = DaemonSecurity.Load();
            EditorApplication.update += Tick;
            AssemblyReloadEvents.beforeAssemblyReload += Teardown;
            EditorApplication.quitting += Teardown;
        }

        private void OnDisable()
        {
            EditorApplication.update -= Tick;
            AssemblyReloadEvents.beforeAssemblyReload -= Teardown;
            EditorApplication.quitting -= Teardown;
            Teardown();
        }

        /// <summary>Before a domain reload or quitting: no socket may outlive the assembly.</summary>
        private void Teardown()
        {
            if (generation != null) generation.Cancel();
            StopLive();
            if (client != null)
            {
                client.Dispose();
                client = null;
            }
            Kiln.DestroyTexture(preview);
            Kiln.DestroyTexture(liveTexture);
            preview = null;
            liveTexture = null;
        }

        // ---- periodic work (EditorApplication.update) -------------------------------------------

        private void Tick()
        {
            double now = EditorApplication.timeSinceStartup;
            if (now >= nextDaemonCheck)
            {
                nextDaemonCheck = now + 1.0;   // a process lookup: not on every repaint
                bool running = DaemonProcess.IsRunning;
                if (running != daemonRunning) Repaint();
                daemonRunning = running;
            }
            bool connected = client != null && client.IsConnected;
            if (connected && !polling && now >= nextHealthPoll)
            {
                nextHealthPoll = now + HealthPollSeconds;
                Fire(PollStatusAsync());
            }
            if (!connected && wantConnected && autoReconnect && !connecting && busy == null && now >= reconnectAt)
                Fire(ConnectAsync(false));
            if (live != null && now >= nextLiveSend)
            {
                nextLiveSend = now + 1.0 / Math.Max(0.5, liveFps);
                SendLiveInput();
            }
        }

        private void Fire(Task task)
        {
            task.ContinueWith(t => EditorMainThread.Post(() => SetError(t.Exception)),
                TaskContinuationOptions.OnlyOnFaulted);
        }

        // ---- connection and daemon ------------------------------------------------------------------

        private PixelKilnClient EnsureClient()
        {
            if (client != null && clientUrl == Url + "\n" + security.Key) return client;
            if (client != null) client.Dispose();
            var options = new PixelKilnClientOptions
            {
                Uri = new Uri(Url),
                ConnectAttempts = 3,
                InitialBackoff = TimeSpan.FromMilliseconds(250),
                ConnectTimeout = TimeSpan.FromSeconds(3),
                CallbackContext = EditorMainThread.SynchronizationContext,
            };
            security.Apply(options);
            client = new PixelKilnClient(options);
            clientUrl = Url + "\n" + security.Key;
            client.Disconnected += OnDisconnected;
            return client;
        }

        private async Task ConnectAsync(bool byUser)
        {
            wantConnected = true;
            connecting = true;
            try
            {
                PixelKilnClient connection = EnsureClient();
                await connection.ConnectAsync();
                status = connection.ServerStatus;
                reconnectDelay = 1.0;
                await RefreshModelsAsync();
                SetMessage(status != null && !status.Ready ? "Connected; the daemon is still warming up." : "Connected.", MessageType.Info);
            }
            catch (Exception e)
            {
                reconnectAt = EditorApplication.timeSinceStartup + reconnectDelay;
                reconnectDelay = Math.Min(reconnectDelay * 2, MaxReconnectSeconds);
                SetError(e);
                var refused = e as PixelKilnException;
                if (refused != null && (refused.Code == StatusCodes.Unauthenticated || refused.Code == StatusCodes.InvalidArgument))
                    wantConnected = false;   // retrying cannot help until the settings change
                else if (!byUser && autoReconnect)
                    message += "\nRetrying in " + Math.Round(reconnectAt - EditorApplication.timeSinceStartup) + " s.";
            }
            finally
            {
                connecting = false;
                Repaint();
            }
        }

        private void Disconnect()
        {
            wantConnected = false;
            StopLive();
            if (client != null) Fire(client.CloseAsync());
            status = null;
            SetMessage("Disconnected.", MessageType.Info);
        }

        private void OnDisconnected(PixelKilnConnectionException reason)
        {
            status = null;
            if (wantConnected)
            {
                reconnectAt = EditorApplication.timeSinceStartup + reconnectDelay;
                SetMessage(ErrorText.Describe(reason, Url) + (autoReconnect ? "\nReconnecting..." : ""), MessageType.Warning);
            }
            Repaint();
        }

        private async Task PollStatusAsync()
        {
            polling = true;
            try
            {
                status = await client.StatusAsync();
            }
            catch (PixelKilnConnectionException)
            {
                // OnDisconnected reports it.
            }
            finally
            {
                polling = false;
                Repaint();
            }
        }

        private async Task RefreshModelsAsync()
        {
            ListModelsResponse models = await client.ListModelsAsync();
            var names = new List<string> { "" };
            foreach (ModelInfo info in models.Models) names.Add(info.Name);
            modelNames = names.ToArray();
        }

        private async Task StartDaemonAsync()
        {
            busy = "Starting the daemon...";
            try
            {
                EditorPrefs.SetString(ExecutableKey, executable);
                var process = DaemonProcess.Start(executable, grpcPort, wsPort, daemonModel, daemonArguments);
                daemonRunning = true;
                SetMessage("Daemon started (pid " + process.Id + "); waiting until it reports ready (model load and warm-up)...\n"
                    + "Its output goes to " + DaemonProcess.LogPath, MessageType.Info);
                wantConnected = true;
                status = await DaemonProcess.WaitReadyAsync(EnsureClient(), process, TimeSpan.FromMinutes(5), CancellationToken.None);
                await RefreshModelsAsync();
                SetMessage("Daemon ready: " + status.DefaultModel + " on " + status.Device + ".", MessageType.Info);
            }
            catch (Exception e)
            {
                SetError(e);
            }
            finally
            {
                busy = null;
                Repaint();
            }
        }

        private async Task StopDaemonAsync()
        {
            busy = "Stopping the daemon...";
            try
            {
                wantConnected = false;
                if (generation != null) generation.Cancel();
                StopLive();
                if (client != null) await client.CloseAsync();
                await DaemonProcess.StopAsync(TimeSpan.FromSeconds(15));
                daemonRunning = false;
                status = null;
                SetMessage("Daemon stopped.", MessageType.Info);
            }
            catch (Exception e)
            {
                SetError(e);
            }
            finally
            {
                busy = null;
                Repaint();
            }
        }

        // ---- generation -----------------------------------------------------------------------------

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

        // ---- live mode ----------------------------------------------------------------------------

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
            if (!frame.Unchanged && frame.Image != null && frame.Image.Data.Length > 0)
            {
                liveTexture = Kiln.Decode(frame.Image, false, Tiling.None, liveTexture);
                lastLiveImage = frame.Image;
            }
            liveStats = "input " + frame.Seq + (frame.Unchanged ? " unchanged" : "") + ", skipped " + frame.Skipped
                + (frame.Timings != null ? ", " + Math.Round(frame.Timings.TotalMs) + " ms" : "");
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

        // ---- messages ------------------------------------------------------------------------------

        private void SetMessage(string text, MessageType type)
        {
            message = text;
            messageType = type;
            Repaint();
        }

        private void SetError(Exception error)
        {
            if (error == null) return;
            SetMessage(ErrorText.Describe(error, Url), error is OperationCanceledException ? MessageType.Info : MessageType.Error);
        }

        // ---- GUI -----------------------------------------------------------------------------------

        private void OnGUI()
        {
            scroll = EditorGUILayout.BeginScrollView(scroll);
            DrawConnection();
            EditorGUILayout.Space();
            DrawGenerate();
            EditorGUILayout.Space();
            DrawLive();
            EditorGUILayout.Space();
            EditorGUILayout.HelpBox(message, messageType);
            EditorGUILayout.EndScrollView();
        }

        private void DrawConnection()
        {
            EditorGUILayout.LabelField("Daemon", EditorStyles.boldLabel);
            host = EditorGUILayout.TextField("Host", host);
            wsPort = EditorGUILayout.IntField(new GUIContent("WebSocket port", "pixelkiln serve --ws-port (default 50052)"), wsPort);
            autoReconnect = EditorGUILayout.Toggle(new GUIContent("Reconnect", "Reconnect with backoff when the connection drops"), autoReconnect);
            security.Draw();
            bool connected = client != null && client.IsConnected;
            EditorGUILayout.BeginHorizontal();
            GUI.enabled = !connecting && busy == null;
            if (!connected && GUILayout.Button(connecting ? "Connecting..." : "Connect")) Fire(ConnectAsync(true));
            if (connected && GUILayout.Button("Disconnect")) Disconnect();
            GUI.enabled = true;
            EditorGUILayout.EndHorizontal();
            EditorGUILayout.LabelField("Status", DescribeStatus(connected), EditorStyles.wordWrappedLabel);

            EditorGUILayout.LabelField("Local daemon", EditorStyles.miniBoldLabel);
            executable = EditorGUILayout.TextField(new GUIContent("Executable", "The pixelkiln script (.venv/bin/pixelkiln, .venv\\Scripts\\pixelkiln.exe), its environment's or checkout's folder, or pixelkiln: a .venv beside the project, else PATH"), executable);
            grpcPort = EditorGUILayout.IntField(new GUIContent("gRPC port", "pixelkiln serve --port (default 50051)"), grpcPort);
            daemonModel = EditorGUILayout.TextField(new GUIContent("Model", "--model (empty: the daemon's default)"), daemonModel);
            daemonArguments = EditorGUILayout.TextField(new GUIContent("Extra arguments", "e.g. --offline --device cuda"), daemonArguments);
            EditorGUILayout.BeginHorizontal();
            GUI.enabled = busy == null;
            if (!daemonRunning && GUILayout.Button("Start daemon")) Fire(StartDaemonAsync());
            if (daemonRunning && GUILayout.Button("Stop daemon")) Fire(StopDaemonAsync());
            GUI.enabled = true;
            EditorGUILayout.EndHorizontal();
            if (busy != null) EditorGUILayout.LabelField(busy);
            string log = DaemonProcess.LogPath;
            if (log != null && GUILayout.Button(new GUIContent("Show daemon log", log), GUILayout.Width(130)))
                EditorUtility.RevealInFinder(log);
        }

        private string DescribeStatus(bool connected)
        {
            if (!connected) return connecting ? "connecting to " + Url : "not connected (" + Url + ")";
            if (status == null) return "connected to " + Url;
            return (status.Ready ? "ready" : "warming up") + ": PixelKiln " + status.Version + " on " + status.Device + "/"
                + status.Dtype + ", model " + status.DefaultModel + ", queue " + status.QueueDepth + "/" + status.QueueCapacity
                + ", running " + status.Running;
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
            if (preview != null)
            {
                Rect area = GUILayoutUtility.GetRect(128, 256, GUILayout.ExpandWidth(true));
                GUI.DrawTexture(area, preview, ScaleMode.ScaleToFit, true);
            }
            foreach (string path in lastSaved) EditorGUILayout.LabelField(path, EditorStyles.miniLabel);
        }

        private string[] ModelLabels()
        {
            var labels = new string[modelNames.Length];
            for (int i = 0; i < modelNames.Length; i++) labels[i] = i == 0 ? "(daemon default)" : modelNames[i];
            return labels;
        }

        private void DrawLive()
        {
            EditorGUILayout.LabelField("Live", EditorStyles.boldLabel);
            liveFromSceneView = EditorGUILayout.Toggle(new GUIContent("From scene view", "Render the scene view camera; off: use a texture"), liveFromSceneView);
            if (!liveFromSceneView)
                liveSource = (Texture)EditorGUILayout.ObjectField("Source texture", liveSource, typeof(Texture), false);
            liveStrength = EditorGUILayout.Slider(new GUIContent("Strength", "How much of the input to change"), liveStrength, 0.05f, 1f);
            liveFps = EditorGUILayout.Slider(new GUIContent("Max frames/s", "How often inputs are sent"), liveFps, 1f, 30f);
            EditorGUILayout.BeginHorizontal();
            GUI.enabled = busy == null;
            if (live == null && GUILayout.Button("Start live")) Fire(StartLiveAsync());
            if (live != null && GUILayout.Button("Stop live")) StopLive();
            GUI.enabled = lastLiveImage != null;
            if (GUILayout.Button("Save frame", GUILayout.Width(90))) Fire(SaveLiveFrameAsync());
            GUI.enabled = true;
            EditorGUILayout.EndHorizontal();
            if (liveStats.Length > 0) EditorGUILayout.LabelField(liveStats, EditorStyles.miniLabel);
            if (liveTexture != null)
            {
                Rect area = GUILayoutUtility.GetRect(128, 256, GUILayout.ExpandWidth(true));
                GUI.DrawTexture(area, liveTexture, ScaleMode.ScaleToFit, true);
            }
        }

        private async Task SaveLiveFrameAsync()
        {
            try
            {
                string path = await AssetSaver.SaveImageAsync(lastLiveImage, folder, prompt + "_live");
                SetMessage("Saved " + path + ".", MessageType.Info);
            }
            catch (Exception e)
            {
                SetError(e);
            }
        }
    }
}
