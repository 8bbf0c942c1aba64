// The PixelKiln C# client over the WebSocket carrier: construction, connect with backoff, close,
// dispose and callback dispatch. The calls are in PixelKilnClient.Requests.cs, the handshake in
// PixelKilnClient.Handshake.cs, connect-failure messages in ConnectFailure.cs. Hand-written.

using System;
using System.Runtime.ExceptionServices;
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
    public sealed partial class PixelKilnClient : IDisposable
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
                throw new PixelKilnConnectionException(ConnectFailure.Describe(Uri, last, attempts), last);
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
    }
}
