// The window's connection and daemon panel: client, connect and reconnect, health polling,
// starting and stopping the local daemon.

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
    public sealed partial class PixelKilnWindow
    {
        private const double MaxReconnectSeconds = 30.0;

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

        private Task StartDaemonAsync()
        {
            return RunBusyAsync("Starting the daemon...", async () =>
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
            });
        }

        private Task StopDaemonAsync()
        {
            return RunBusyAsync("Stopping the daemon...", async () =>
            {
                wantConnected = false;
                if (generation != null) generation.Cancel();
                StopLive();
                if (client != null) await client.CloseAsync();
                await DaemonProcess.StopAsync(TimeSpan.FromSeconds(15));
                daemonRunning = false;
                status = null;
                SetMessage("Daemon stopped.", MessageType.Info);
            });
        }

        /// <summary>Runs <paramref name="work"/> with <paramref name="label"/> shown and the daemon buttons off; errors go to the message box.</summary>
        private async Task RunBusyAsync(string label, Func<Task> work)
        {
            busy = label;
            try
            {
                await work();
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
    }
}
