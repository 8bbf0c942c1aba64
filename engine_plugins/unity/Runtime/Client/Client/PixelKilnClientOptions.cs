// Options of the PixelKiln C# client. Hand-written (not generated).

using System;
using System.Threading;

namespace PixelKiln.Client
{
    /// <summary>
    /// How <see cref="PixelKilnClient"/> connects and behaves. Every property has a default that
    /// suits a daemon on the same machine (<c>pixelkiln serve</c>, WebSocket port 50052).
    /// </summary>
    /// <example>
    /// <code>
    /// var options = new PixelKilnClientOptions
    /// {
    ///     Uri = new Uri("ws://127.0.0.1:50052/v1"),
    ///     ConnectAttempts = 5,                              // then PixelKilnConnectionException
    ///     InitialBackoff = TimeSpan.FromMilliseconds(250),  // 250 ms, 500 ms, 1 s, 2 s between tries
    /// };
    /// using (var client = new PixelKilnClient(options)) { await client.ConnectAsync(); }
    /// </code>
    /// </example>
    public sealed class PixelKilnClientOptions
    {
        /// <summary>The default WebSocket endpoint of a local daemon.</summary>
        public const string DefaultUrl = "ws://127.0.0.1:50052/v1";

        /// <summary>The daemon's default frame limit (65 MiB; <c>pixelkiln serve --max-message-mib</c>).</summary>
        public const long DefaultMaxMessageBytes = 65L * 1024 * 1024;

        /// <summary>Creates options with the defaults.</summary>
        public PixelKilnClientOptions()
        {
            Uri = new Uri(DefaultUrl);
            ConnectAttempts = 4;
            InitialBackoff = TimeSpan.FromMilliseconds(250);
            MaxBackoff = TimeSpan.FromSeconds(5);
            ConnectTimeout = TimeSpan.FromSeconds(5);
            AutoReconnect = true;
            MaxMessageBytes = DefaultMaxMessageBytes;
            CancelGrace = TimeSpan.FromSeconds(10);
            KeepAliveInterval = TimeSpan.FromSeconds(20);
            LiveFrameBuffer = 8;
            CaptureSynchronizationContext = true;
        }

        /// <summary>The WebSocket carrier, <c>ws://HOST:PORT/v1</c> (<c>pixelkiln serve --ws-port</c>).</summary>
        public Uri Uri { get; set; }

        /// <summary>
        /// The daemon's token (<c>pixelkiln serve --token-file</c>; made by
        /// <c>pixelkiln token create NAME</c>), sent as <c>Authorization: Bearer</c> on the WebSocket
        /// handshake. Null or empty: the <c>PIXELKILN_TOKEN</c> environment variable, if set. A
        /// daemon with tokens refuses a connection without a known one: <c>ConnectAsync</c> throws
        /// <see cref="PixelKilnException"/> with <see cref="StatusCodes.Unauthenticated"/>.
        /// </summary>
        public string Token { get; set; }

        /// <summary>
        /// For a <c>wss://</c> <see cref="Uri"/>: the CA that signed the daemon's certificate
        /// (<c>--tls-cert</c>), as a PEM file's path or PEM text; only certificates that chain to it
        /// and name the host are trusted. Null or empty: the <c>PIXELKILN_TLS_CA</c> environment
        /// variable, else the system's trust store. On .NET Core / .NET 5+ (Godot .NET) the check is the
        /// socket's own callback; on Mono (Unity, mono) ClientWebSocket ignores that callback, so the
        /// client registers the CA once with Mono's process-wide TLS defaults: other TLS connections
        /// in the process then trust it too.
        /// </summary>
        public string RootCertificate { get; set; }

        /// <summary>
        /// Connection attempts made by one <see cref="PixelKilnClient.ConnectAsync"/> (at least 1);
        /// the waits between them double from <see cref="InitialBackoff"/> up to <see cref="MaxBackoff"/>.
        /// </summary>
        public int ConnectAttempts { get; set; }

        /// <summary>The wait after the first failed attempt.</summary>
        public TimeSpan InitialBackoff { get; set; }

        /// <summary>The longest wait between two attempts.</summary>
        public TimeSpan MaxBackoff { get; set; }

        /// <summary>The limit for one attempt (TCP connect plus the WebSocket handshake).</summary>
        public TimeSpan ConnectTimeout { get; set; }

        /// <summary>
        /// When a call is made while disconnected (never connected, or the connection was lost),
        /// connect first (with the backoff above). Off: such calls throw
        /// <see cref="PixelKilnConnectionException"/>.
        /// </summary>
        public bool AutoReconnect { get; set; }

        /// <summary>
        /// The largest frame sent or accepted, in bytes. Keep it equal to the daemon's limit
        /// (65 MiB by default; <c>StatusResponse.max_message_bytes</c> reports it): the daemon closes
        /// the connection (code 1009) on a larger frame, so the client refuses to send one and
        /// throws <c>RESOURCE_EXHAUSTED</c> instead.
        /// </summary>
        public long MaxMessageBytes { get; set; }

        /// <summary>
        /// After a <c>GenerateAsync</c> token is cancelled, how long to wait for the daemon's
        /// confirmation before the task is cancelled anyway.
        /// </summary>
        public TimeSpan CancelGrace { get; set; }

        /// <summary>WebSocket keep-alive (ping) interval.</summary>
        public TimeSpan KeepAliveInterval { get; set; }

        /// <summary>
        /// Unread frames a <see cref="LiveSession"/> keeps for <see cref="LiveSession.ReadFrameAsync"/>;
        /// older ones are dropped (live is latest-wins anyway).
        /// </summary>
        public int LiveFrameBuffer { get; set; }

        /// <summary>
        /// Where event callbacks (generation events, live frames, <c>Disconnected</c>) run. When
        /// null and <see cref="CaptureSynchronizationContext"/> is true, the context current when the
        /// client is constructed is used (Unity's main thread, Godot's main thread); when there is
        /// none, callbacks run on the client's receive thread and must not block.
        /// </summary>
        public SynchronizationContext CallbackContext { get; set; }

        /// <summary>See <see cref="CallbackContext"/>.</summary>
        public bool CaptureSynchronizationContext { get; set; }

        internal PixelKilnClientOptions Copy()
        {
            return (PixelKilnClientOptions)MemberwiseClone();
        }
    }
}
