// The PixelKiln C# client over the WebSocket carrier. Hand-written (not generated).

using System;
using System.IO;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Runtime.ExceptionServices;
using System.Security.Authentication;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.V1;

namespace PixelKiln.Client
{
    /// <summary>
    /// A client of the PixelKiln daemon over its WebSocket carrier (<c>ws://HOST:PORT/v1</c>, each
    /// binary frame one <see cref="Envelope"/>). For Unity (2021.3+, Mono and IL2CPP) and Godot 4
    /// .NET; it needs only <c>System.Net.WebSockets.ClientWebSocket</c> (netstandard2.1).
    /// </summary>
    /// <remarks>
    /// <para>One connection carries any number of concurrent calls: one receive loop reads every
    /// frame and routes it by request id; sends are serialised by a lock. All methods are
    /// thread-safe and never block the calling thread.</para>
    /// <para>Event callbacks (<see cref="GenerateAsync"/> events, live frames,
    /// <see cref="Disconnected"/>) run on <see cref="PixelKilnClientOptions.CallbackContext"/>:
    /// by default the <see cref="SynchronizationContext"/> of the thread that constructed the
    /// client, so in Unity and Godot they run on the main thread.</para>
    /// <para>Failures raise <see cref="PixelKilnException"/> with the daemon's status code name
    /// and message; connection problems raise <see cref="PixelKilnConnectionException"/>
    /// (<c>UNAVAILABLE</c>), which also fails every call pending on a lost connection.</para>
    /// </remarks>
    /// <example>
    /// <code>
    /// using (var client = new PixelKilnClient("ws://127.0.0.1:50052/v1"))
    /// {
    ///     await client.ConnectAsync();   // retries with backoff; clear error if the daemon is down
    ///     var request = new GenerateRequest { Prompt = "mossy cobblestone", Width = 512, Height = 512 };
    ///     request.Seed = 7;
    ///     request.Tiling = Tiling.Xy;
    ///     var events = new GenerateHandlers { Progress = p => Console.WriteLine(p.Step + "/" + p.Total) };
    ///     Result result = await client.GenerateAsync(request, events, cancellationToken);
    ///     ResultFiles.Save(result, "Assets/PixelKiln", "cobblestone");   // temp file + rename
    /// }
    /// </code>
    /// </example>
    public sealed class PixelKilnClient : IDisposable
    {
        private readonly SynchronizationContext callbackContext;
        private readonly SemaphoreSlim connectLock = new SemaphoreSlim(1, 1);
        private Connection current;
        private PixelKilnConnectionException lastLoss;
        private StatusResponse serverStatus;
        private long nextId;
        private int disposed;

        /// <summary>A client for the local daemon's default endpoint, <c>ws://127.0.0.1:50052/v1</c>.</summary>
        public PixelKilnClient() : this(new PixelKilnClientOptions())
        {
        }

        /// <summary>A client for <paramref name="url"/>, for example <c>ws://127.0.0.1:50052/v1</c>.</summary>
        public PixelKilnClient(string url) : this(OptionsFor(url))
        {
        }

        /// <summary>A client with explicit options (they are copied; later changes have no effect).</summary>
        public PixelKilnClient(PixelKilnClientOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            if (options.Uri == null) throw new ArgumentException("options.Uri is required", "options");
            if (options.Uri.Scheme != "ws" && options.Uri.Scheme != "wss")
                throw new ArgumentException("the PixelKiln WebSocket carrier needs a ws:// URL, not " + options.Uri, "options");
            Options = options.Copy();
            callbackContext = Options.CallbackContext
                ?? (Options.CaptureSynchronizationContext ? SynchronizationContext.Current : null);
        }

        /// <summary>The options in force (a copy of those given).</summary>
        public PixelKilnClientOptions Options { get; private set; }

        /// <summary>The daemon's endpoint.</summary>
        public Uri Uri { get { return Options.Uri; } }

        /// <summary>True while a connection is open.</summary>
        public bool IsConnected
        {
            get
            {
                Connection connection = Volatile.Read(ref current);
                return connection != null && connection.IsOpen;
            }
        }

        /// <summary>The daemon's status, as read when the last connection was made (null before).</summary>
        public StatusResponse ServerStatus { get { return Volatile.Read(ref serverStatus); } }

        /// <summary>A connection was made (runs on the callback context).</summary>
        public event Action Connected;

        /// <summary>
        /// The connection was lost or closed; the exception says why (runs on the callback context).
        /// Pending calls have already failed with it.
        /// </summary>
        public event Action<PixelKilnConnectionException> Disconnected;

        /// <summary>
        /// Connects (no-op when connected). Makes up to <see cref="PixelKilnClientOptions.ConnectAttempts"/>
        /// attempts with exponential backoff; each attempt opens the WebSocket and reads the daemon's
        /// status, so a port that is not the PixelKiln carrier fails here, not on the first call.
        /// </summary>
        /// <exception cref="PixelKilnConnectionException">
        /// The daemon is not running, the port or path is wrong, or the handshake timed out; the
        /// message says which and how to fix it.
        /// </exception>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        public async Task ConnectAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            ThrowIfDisposed();
            await connectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (IsConnected) return;
                int attempts = Math.Max(1, Options.ConnectAttempts);
                TimeSpan delay = Options.InitialBackoff;
                Exception last = null;
                for (int attempt = 1; attempt <= attempts; attempt++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    try
                    {
                        Connection connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
                        Volatile.Write(ref current, connection);
                        Dispatch(() =>
                        {
                            Action handler = Connected;
                            if (handler != null) handler();
                        });
                        return;
                    }
                    catch (Exception e)
                    {
                        if (e is OperationCanceledException && cancellationToken.IsCancellationRequested) throw;
                        last = e;
                        if (e is PixelKilnException && !(e is PixelKilnConnectionException)) break;  // answered, but wrongly
                    }
                    ThrowIfDisposed();
                    if (attempt < attempts)
                    {
                        await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                        long doubled = Math.Min(delay.Ticks * 2, Options.MaxBackoff.Ticks);
                        delay = TimeSpan.FromTicks(Math.Max(doubled, 1));
                    }
                }
                if (last is PixelKilnException && !(last is PixelKilnConnectionException))
                    ExceptionDispatchInfo.Capture(last).Throw();   // refused: its own code and text
                throw new PixelKilnConnectionException(DescribeConnectFailure(last, attempts), last);
            }
            finally
            {
                connectLock.Release();
            }
        }

        /// <summary>
        /// Closes the connection politely (a WebSocket close frame); pending calls fail with
        /// <see cref="PixelKilnConnectionException"/>. The client can connect again afterwards.
        /// </summary>
        public Task CloseAsync()
        {
            Connection connection = Volatile.Read(ref current);
            if (connection == null) return Task.FromResult(0);
            return connection.CloseGracefullyAsync(TimeSpan.FromSeconds(2),
                new PixelKilnConnectionException("the connection to " + Uri + " was closed by the client", null));
        }

        /// <summary>
        /// Runs one generation and returns its <see cref="Result"/> (images, seeds, recipe, timings,
        /// maps, atlas). <paramref name="events"/> receives every event as it arrives: Accepted,
        /// Queued, Progress, Preview, Result (use <see cref="GenerateHandlers"/> for typed callbacks).
        /// </summary>
        /// <param name="request">
        /// The request. When its <c>ClientRequestId</c> is empty one is assigned (and written into
        /// the request), so <see cref="CancelAsync"/> can be called with it.
        /// </param>
        /// <param name="events">Optional; called on the callback context, in order.</param>
        /// <param name="cancellationToken">
        /// Cancelling sends a cancel envelope: the daemon stops at the next step and skips the VAE
        /// decode; the task then ends cancelled (or after <see cref="PixelKilnClientOptions.CancelGrace"/>
        /// without an answer). A result that arrives before the cancel takes effect is returned.
        /// </param>
        /// <exception cref="PixelKilnException">The daemon refused or failed the request
        /// (<c>INVALID_ARGUMENT</c> names the field; <c>CANCELLED</c> when cancelled by
        /// <see cref="CancelAsync"/> or at shutdown).</exception>
        /// <exception cref="PixelKilnConnectionException">Not reachable, or the connection was lost.</exception>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        /// <example>
        /// <code>
        /// var request = new GenerateRequest { Prompt = "gold coin sprite", Background = Background.Transparent };
        /// request.Preview = new PreviewSettings { EveryNSteps = 1 };
        /// Result result = await client.GenerateAsync(request, new GenerateHandlers
        /// {
        ///     Progress = p => progressBar.value = (float)p.Step / p.Total,
        /// }, cts.Token);
        /// byte[] png = result.Images[0].Image.Data;
        /// </code>
        /// </example>
        public async Task<Result> GenerateAsync(GenerateRequest request, IProgress<GenerateEvent> events = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            if (request == null) throw new ArgumentNullException("request");
            cancellationToken.ThrowIfCancellationRequested();
            if (request.ClientRequestId.Length == 0) request.ClientRequestId = NewId("gen");
            string requestId = request.ClientRequestId;
            byte[] frame = new Envelope { RequestId = requestId, Generate = request }.ToByteArray();
            Connection connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            var call = new GenerateCall(this, connection, requestId, events);
            Register(connection, call);
            try
            {
                await connection.SendAsync(frame, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception)
            {
                connection.Remove(call);
                throw;
            }
            call.Watch(cancellationToken);
            return await call.Task.ConfigureAwait(false);
        }

        /// <summary>
        /// Cancels a queued or running generation by its client request id (the envelope request
        /// id), its server id (<c>Accepted.RequestId</c>) or its <c>client_request_id</c>. Returns
        /// false when nothing with that id is queued or running. The generation's own task then
        /// fails with <c>CANCELLED</c>.
        /// </summary>
        public async Task<bool> CancelAsync(string requestId, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (string.IsNullOrEmpty(requestId)) throw new ArgumentException("requestId is required", "requestId");
            Envelope answer = await UnaryAsync(new Envelope { Cancel = new CancelRequest { RequestId = requestId } },
                Envelope.BodyOneofCase.CancelResponse, cancellationToken).ConfigureAwait(false);
            return answer.CancelResponse.Cancelled;
        }

        /// <summary>The model catalogue and the daemon's default model.</summary>
        public async Task<ListModelsResponse> ListModelsAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { ListModels = new ListModelsRequest() },
                Envelope.BodyOneofCase.ListModelsResponse, cancellationToken).ConfigureAwait(false);
            return answer.ListModelsResponse;
        }

        /// <summary>
        /// The daemon's state: version, device, dtype, memory, loaded models, queue depth and
        /// capacity, <c>Ready</c> (true after warm-up) and its message limit. Cheap: poll it for health.
        /// </summary>
        public async Task<StatusResponse> StatusAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { Status = new StatusRequest() },
                Envelope.BodyOneofCase.StatusResponse, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref serverStatus, answer.StatusResponse);
            return answer.StatusResponse;
        }

        /// <summary>Loads a model (catalogue name, hub id, local folder or .safetensors path).</summary>
        public async Task<ModelInfo> LoadModelAsync(string name, CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { LoadModel = new LoadModelRequest { Name = name } },
                Envelope.BodyOneofCase.ModelInfo, cancellationToken).ConfigureAwait(false);
            return answer.ModelInfo;
        }

        /// <summary>Unloads a model; false when it was not loaded.</summary>
        public async Task<bool> UnloadModelAsync(string name, CancellationToken cancellationToken = default(CancellationToken))
        {
            Envelope answer = await UnaryAsync(new Envelope { UnloadModel = new UnloadModelRequest { Name = name } },
                Envelope.BodyOneofCase.UnloadModelResponse, cancellationToken).ConfigureAwait(false);
            return answer.UnloadModelResponse.Unloaded;
        }

        /// <summary>
        /// Opens a live img2img session on the current connection (connect first, or use
        /// <see cref="OpenLiveAsync"/>). <paramref name="settings"/> go with the first input.
        /// </summary>
        /// <exception cref="PixelKilnConnectionException">Not connected.</exception>
        /// <example>
        /// <code>
        /// LiveSession live = client.OpenLive(new LiveSettings { Prompt = "lava rock", Strength = 0.6f, Steps = 2 });
        /// live.FrameReceived += frame => { if (!frame.Unchanged) Show(frame.Image.Data); };
        /// live.Send(sketchPng);               // never blocks; the daemon works on the newest input
        /// live.Send(nextSketchPng, new LiveSettings { Prompt = "ice" });
        /// await live.End();                   // frames for inputs already sent still arrive
        /// </code>
        /// </example>
        public LiveSession OpenLive(LiveSettings settings = null)
        {
            ThrowIfDisposed();
            Connection connection = Volatile.Read(ref current);
            if (connection == null || !connection.IsOpen) throw NotConnected();
            var session = new LiveSession(this, connection, NewId("live"), settings);
            Register(connection, session.Call);
            return session;
        }

        /// <summary><see cref="OpenLive"/> after connecting if needed.</summary>
        public async Task<LiveSession> OpenLiveAsync(LiveSettings settings = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            Connection connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            var session = new LiveSession(this, connection, NewId("live"), settings);
            Register(connection, session.Call);
            return session;
        }

        /// <summary>Aborts the connection; pending calls fail with <see cref="PixelKilnConnectionException"/>.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            Connection connection = Volatile.Read(ref current);
            if (connection != null)
                connection.Close(new PixelKilnConnectionException("the client was disposed", null));
        }

        // ---- internals ----------------------------------------------------------------------

        internal void Dispatch(Action action)
        {
            SynchronizationContext context = callbackContext;
            if (context == null) action();
            else context.Post(state => ((Action)state)(), action);
        }

        internal Task SendAsync(Connection connection, Envelope envelope, CancellationToken cancellationToken)
        {
            return connection.SendAsync(envelope.ToByteArray(), cancellationToken);
        }

        /// <summary>Best effort: asks the daemon to cancel <paramref name="target"/>; the answer is ignored.</summary>
        internal void SendCancelInBackground(Connection connection, string target)
        {
            var envelope = new Envelope { RequestId = NewId("cancel"), Cancel = new CancelRequest { RequestId = target } };
            Task.Run(async () =>
            {
                try
                {
                    await SendAsync(connection, envelope, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Connection gone: the daemon cancels everything of a closed connection itself.
                }
            });
        }

        internal string NewId(string prefix)
        {
            return "cs-" + prefix + "-" + Interlocked.Increment(ref nextId);
        }

        private static PixelKilnClientOptions OptionsFor(string url)
        {
            var options = new PixelKilnClientOptions();
            options.Uri = new Uri(url);
            return options;
        }

        private void Register(Connection connection, PendingCall call)
        {
            if (connection.Add(call)) return;
            if (connection.HasCall(call.RequestId))
                throw new PixelKilnException(StatusCodes.InvalidArgument, "INVALID_ARGUMENT",
                    "request_id: '" + call.RequestId + "' is already in use on this connection");
            throw connection.CloseReason ?? NotConnected();
        }

        private async Task<Envelope> UnaryAsync(Envelope envelope, Envelope.BodyOneofCase expected,
            CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            envelope.RequestId = NewId("call");
            Connection connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            var call = new UnaryCall(connection, envelope.RequestId, expected);
            Register(connection, call);
            try
            {
                await SendAsync(connection, envelope, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception)
            {
                connection.Remove(call);
                throw;
            }
            call.Watch(cancellationToken);
            return await call.Task.ConfigureAwait(false);
        }

        private async Task<Connection> EnsureConnectedAsync(CancellationToken cancellationToken)
        {
            ThrowIfDisposed();
            Connection connection = Volatile.Read(ref current);
            if (connection != null && connection.IsOpen) return connection;
            if (!Options.AutoReconnect) throw NotConnected();
            await ConnectAsync(cancellationToken).ConfigureAwait(false);
            connection = Volatile.Read(ref current);
            if (connection == null || !connection.IsOpen) throw NotConnected();
            return connection;
        }

        private PixelKilnConnectionException NotConnected()
        {
            PixelKilnConnectionException loss = Volatile.Read(ref lastLoss);
            if (loss != null)
                return new PixelKilnConnectionException("not connected to " + Uri + " (" + loss.Detail
                    + "); call ConnectAsync", loss);
            return new PixelKilnConnectionException("not connected to " + Uri + "; call ConnectAsync first", null);
        }

        private async Task<Connection> OpenAsync(CancellationToken cancellationToken)
        {
            ClientSecurity security = ClientSecurity.Resolve(Options);
            var socket = new ClientWebSocket();
            socket.Options.KeepAliveInterval = Options.KeepAliveInterval;
            socket.Options.SetBuffer(64 * 1024, 64 * 1024);
            security.Apply(socket, Options.Uri);
            Connection connection = null;
            using (var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                attempt.CancelAfter(Options.ConnectTimeout);
                try
                {
                    // WhenAny as well as the token: some runtimes ignore cancellation during the
                    // TCP connect, and an attempt must never hang past ConnectTimeout.
                    Task connecting = socket.ConnectAsync(Options.Uri, attempt.Token);
                    Task finished = await Task.WhenAny(connecting, Task.Delay(Options.ConnectTimeout, cancellationToken))
                        .ConfigureAwait(false);
                    if (finished != connecting)
                    {
                        socket.Abort();
                        ObserveQuietly(connecting);
                        cancellationToken.ThrowIfCancellationRequested();
                        throw new TimeoutException("no WebSocket handshake within " + Options.ConnectTimeout.TotalSeconds + " s");
                    }
                    try
                    {
                        await connecting.ConfigureAwait(false);
                    }
                    catch (WebSocketException)
                    {
                        // Refused by HTTP status (a token or Origin)? Then say so, and do not retry.
                        PixelKilnException refusal = await security.ExplainRefusalAsync(Options.Uri, Options.ConnectTimeout)
                            .ConfigureAwait(false);
                        if (refusal != null) throw refusal;
                        throw;
                    }
                    connection = new Connection(socket, Options.Uri, Options.MaxMessageBytes, OnConnectionClosed);
                    connection.Start();
                    // Read the status once: proves this is a PixelKiln carrier and gives its limit.
                    var call = new UnaryCall(connection, NewId("hello"), Envelope.BodyOneofCase.StatusResponse);
                    Register(connection, call);
                    call.Watch(attempt.Token);
                    await SendAsync(connection, new Envelope { RequestId = call.RequestId, Status = new StatusRequest() },
                        attempt.Token).ConfigureAwait(false);
                    Envelope answer = await call.Task.ConfigureAwait(false);
                    StatusResponse status = answer.StatusResponse;
                    if (status.MaxMessageBytes > 0 && (long)status.MaxMessageBytes < connection.MaxSendBytes)
                        connection.MaxSendBytes = (long)status.MaxMessageBytes;
                    Volatile.Write(ref serverStatus, status);
                    return connection;
                }
                catch (OperationCanceledException e)
                {
                    Abandon(socket, connection);
                    if (cancellationToken.IsCancellationRequested) throw;
                    throw new TimeoutException("no answer within " + Options.ConnectTimeout.TotalSeconds + " s", e);
                }
                catch (Exception)
                {
                    Abandon(socket, connection);
                    throw;
                }
            }
        }

        private static void Abandon(ClientWebSocket socket, Connection connection)
        {
            if (connection != null)
                connection.Close(new PixelKilnConnectionException("connection attempt abandoned", null));
            else
            {
                socket.Abort();
                socket.Dispose();
            }
        }

        private static void ObserveQuietly(Task task)
        {
            task.ContinueWith(t => { var ignored = t.Exception; }, TaskContinuationOptions.OnlyOnFaulted);
        }

        private void OnConnectionClosed(Connection connection, PixelKilnConnectionException reason)
        {
            if (Interlocked.CompareExchange(ref current, null, connection) != connection) return;
            Volatile.Write(ref lastLoss, reason);
            if (Volatile.Read(ref disposed) != 0) return;   // no event for our own Dispose()
            Dispatch(() =>
            {
                Action<PixelKilnConnectionException> handler = Disconnected;
                if (handler != null) handler(reason);
            });
        }

        private void ThrowIfDisposed()
        {
            if (Volatile.Read(ref disposed) != 0) throw new ObjectDisposedException("PixelKilnClient");
        }

        private string DescribeConnectFailure(Exception error, int attempts)
        {
            string where = Uri.ToString();
            string port = Uri.IsDefaultPort ? "" : Uri.Port.ToString();
            string tries = attempts == 1 ? "1 attempt" : attempts + " attempts";
            string hint;
            SocketException socketError = Find<SocketException>(error);
            if (socketError != null && socketError.SocketErrorCode == SocketError.ConnectionRefused)
                hint = "connection refused: nothing listens on " + Uri.Host + ":" + Uri.Port
                    + ". Is the daemon running? Start it with `pixelkiln serve --ws-port " + port
                    + "`, or fix the port (the WebSocket carrier's port is --ws-port, default 50052)";
            else if (socketError != null && (socketError.SocketErrorCode == SocketError.HostNotFound
                || socketError.SocketErrorCode == SocketError.NoData))
                hint = "host '" + Uri.Host + "' not found";
            else if (error is TimeoutException)
                hint = error.Message + ": something accepted the TCP connection but did not answer as the "
                    + "PixelKiln WebSocket carrier. Wrong port? (the gRPC port, default 50051, does not speak "
                    + "WebSocket; use --ws-port, default 50052, path /v1)";
            else if (error is PixelKilnConnectionException)
                hint = ((PixelKilnConnectionException)error).Detail
                    + ". Is this the PixelKiln WebSocket carrier (ws://HOST:WS_PORT/v1)?";
            else if (Find<AuthenticationException>(error) != null)
                hint = "the TLS handshake failed (" + Find<AuthenticationException>(error).Message
                    + "): the daemon's certificate is not trusted or does not name '" + Uri.Host
                    + "'. Set PixelKilnClientOptions.RootCertificate (or PIXELKILN_TLS_CA) to the PEM of the CA "
                    + "that signed the daemon's --tls-cert, and connect to a name its certificate lists";
            else if (error is WebSocketException || Find<WebSocketException>(error) != null)
                hint = "the port answered but is not the PixelKiln WebSocket carrier (" + error.Message
                    + "). Wrong port or path? Expected ws://HOST:WS_PORT/v1 (--ws-port, default 50052)"
                    + (Uri.Scheme == "ws" ? "; a daemon started with --tls-cert serves wss:// only" : "");
            else if (error is PixelKilnException)
                hint = "the endpoint answered the status request with " + error.Message;
            else
                hint = error == null ? "unknown error" : error.GetType().Name + ": " + error.Message;
            return "cannot reach the PixelKiln daemon at " + where + " after " + tries + ": " + hint;
        }

        private static T Find<T>(Exception error) where T : Exception
        {
            for (Exception e = error; e != null; e = e.InnerException)
            {
                var match = e as T;
                if (match != null) return match;
                var aggregate = e as AggregateException;
                if (aggregate != null && aggregate.InnerExceptions.Count > 0)
                {
                    T inner = Find<T>(aggregate.InnerExceptions[0]);
                    if (inner != null) return inner;
                }
            }
            return null;
        }
    }
}
