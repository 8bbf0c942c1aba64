// The PixelKiln editor window: settings, state, lifetime, periodic work and the layout of its
// panels, which live in PixelKilnWindow.Connection.cs, PixelKilnWindow.Generate.cs and
// PixelKilnWindow.Live.cs.

using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;
using UnityEditor;
using UnityEngine;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// Window > PixelKiln: connection and daemon health, prompt and asset options, progress and
    /// previews, cancel, results saved under Assets/PixelKiln with import settings, and a live
    /// mode fed by a texture or the scene view camera. Nothing here blocks the editor: network
    /// calls are awaited (continuations return to the main thread), client callbacks are drained
    /// by <see cref="EditorMainThread"/>, and periodic work runs from EditorApplication.update.
    /// </summary>
    public sealed partial class PixelKilnWindow : EditorWindow
    {
        private const string ExecutableKey = "PixelKiln.Executable";
        private const double HealthPollSeconds = 2.0;

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
        [SerializeField] private bool liveRawFrames = true;
        [SerializeField] private bool liveStreamBatch;
        [SerializeField] private bool liveTinyAutoencoder;
        [SerializeField] private float liveSimilarSkip;
        [SerializeField] private int liveSimilarSkipMax = 10;

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
    }
}
