// The message of a failed connect: what went wrong (refused, wrong port, TLS, timeout) and
// what to do about it. Hand-written.

using System;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;

namespace PixelKiln.Client
{
    /// <summary>Turns the last error of a connect attempt into an actionable message.</summary>
    internal static class ConnectFailure
    {
        /// <summary>Why connecting to <paramref name="uri"/> failed, and how to fix it.</summary>
        public static string Describe(Uri uri, Exception error, int attempts)
        {
            string where = uri.ToString();
            string port = uri.IsDefaultPort ? "" : uri.Port.ToString();
            string tries = attempts == 1 ? "1 attempt" : attempts + " attempts";
            string hint;
            SocketException socketError = Find<SocketException>(error);
            if (socketError != null && socketError.SocketErrorCode == SocketError.ConnectionRefused)
                hint = "connection refused: nothing listens on " + uri.Host + ":" + uri.Port
                    + ". Is the daemon running? Start it with `pixelkiln serve --ws-port " + port
                    + "`, or fix the port (the WebSocket carrier's port is --ws-port, default 50052)";
            else if (socketError != null && (socketError.SocketErrorCode == SocketError.HostNotFound
                || socketError.SocketErrorCode == SocketError.NoData))
                hint = "host '" + uri.Host + "' not found";
            else if (error is TimeoutException)
                hint = error.Message + ": something accepted the TCP connection but did not answer as the "
                    + "PixelKiln WebSocket carrier. Wrong port? (the gRPC port, default 50051, does not speak "
                    + "WebSocket; use --ws-port, default 50052, path /v1)";
            else if (error is PixelKilnConnectionException)
                hint = ((PixelKilnConnectionException)error).Detail
                    + ". Is this the PixelKiln WebSocket carrier (ws://HOST:WS_PORT/v1)?";
            else if (Find<AuthenticationException>(error) != null)
                hint = "the TLS handshake failed (" + Find<AuthenticationException>(error).Message
                    + "): the daemon's certificate is not trusted or does not name '" + uri.Host
                    + "'. Set PixelKilnClientOptions.RootCertificate (or PIXELKILN_TLS_CA) to the PEM of the CA "
                    + "that signed the daemon's --tls-cert, and connect to a name its certificate lists";
            else if (error is WebSocketException || Find<WebSocketException>(error) != null)
                hint = "the port answered but is not the PixelKiln WebSocket carrier (" + error.Message
                    + "). Wrong port or path? Expected ws://HOST:WS_PORT/v1 (--ws-port, default 50052)"
                    + (uri.Scheme == "ws" ? "; a daemon started with --tls-cert serves wss:// only" : "");
            else if (error is PixelKilnException)
                hint = "the endpoint answered the status request with " + error.Message;
            else
                hint = error == null ? "unknown error" : error.GetType().Name + ": " + error.Message;
            return "cannot reach the PixelKiln daemon at " + where + " after " + tries + ": " + hint;
        }

        /// <summary>The first <typeparamref name="T"/> in the chain of inner exceptions, or null.</summary>
        public static T Find<T>(Exception error) where T : Exception
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
