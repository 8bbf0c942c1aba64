// Tokens and TLS for the PixelKiln C# client (README "Running on a studio network"). Hand-written.

using System;
using System.IO;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading.Tasks;

namespace PixelKiln.Client
{
    /// <summary>
    /// The token and the trusted CA of one client, resolved from its options and the environment
    /// (<c>PIXELKILN_TOKEN</c>, <c>PIXELKILN_TLS_CA</c>), applied to each WebSocket it opens.
    /// </summary>
    internal sealed partial class ClientSecurity
    {
        internal const string TokenEnv = "PIXELKILN_TOKEN";
        internal const string CaEnv = "PIXELKILN_TLS_CA";

        private ClientSecurity(string token, X509Certificate2 ca)
        {
            Token = token;
            Ca = ca;
        }

        /// <summary>The bearer token, or null.</summary>
        public string Token { get; private set; }

        /// <summary>The one CA trusted for wss://, or null (the system's trust store).</summary>
        public X509Certificate2 Ca { get; private set; }

        /// <summary>Options first, then the environment; a CA that cannot be read fails here.</summary>
        public static ClientSecurity Resolve(PixelKilnClientOptions options)
        {
            string token = FirstSet(options.Token, Environment.GetEnvironmentVariable(TokenEnv));
            if (token != null && (token.IndexOf('\n') >= 0 || token.IndexOf('\r') >= 0 || token.IndexOf(' ') >= 0))
                throw new PixelKilnException(StatusCodes.InvalidArgument, "INVALID_ARGUMENT",
                    "Token: a token has no spaces or line breaks (copy the pk_... value printed by "
                    + "`pixelkiln token create`)");
            string ca = FirstSet(options.RootCertificate, Environment.GetEnvironmentVariable(CaEnv));
            return new ClientSecurity(token, ca == null ? null : LoadCa(ca));
        }

        /// <summary>Sets the Authorization header and, for wss:// with a CA, the certificate check.</summary>
        public void Apply(ClientWebSocket socket, Uri uri)
        {
            if (Token != null) socket.Options.SetRequestHeader("Authorization", "Bearer " + Token);
            if (Ca == null || uri.Scheme != "wss") return;
            X509Certificate2 ca = Ca;
            // Honoured by .NET Core 2.1+ (Godot .NET); Mono's ClientWebSocket (Unity, mono) ignores it,
            // so the same check is also registered with Mono's TLS defaults.
            string host = uri.Host;
            socket.Options.RemoteCertificateValidationCallback =
                (sender, certificate, chain, errors) => Accepts(ca, host, certificate, errors);
            MonoTrust.Register(ca);
        }

        /// <summary>
        /// After a failed handshake: makes the same handshake by hand and reads the HTTP answer
        /// (ClientWebSocket on Mono does not say which status it got). A 401 or 403 becomes
        /// UNAUTHENTICATED or PERMISSION_DENIED with the daemon's text and what to do; anything
        /// else, or no answer within <paramref name="timeout"/>, gives null.
        /// </summary>
        public async Task<PixelKilnException> ExplainRefusalAsync(Uri uri, TimeSpan timeout)
        {
            Task<string> answer = ReadHandshakeAnswerAsync(uri);
            if (await Task.WhenAny(answer, Task.Delay(timeout)).ConfigureAwait(false) != answer)
            {
                QuietTasks.Observe(answer);
                return null;
            }
            string response;
            try
            {
                response = await answer.ConfigureAwait(false);
            }
            catch (Exception)
            {
                return null;
            }
            int lineEnd = response.IndexOf("\r\n", StringComparison.Ordinal);
            string[] statusLine = (lineEnd < 0 ? response : response.Substring(0, lineEnd)).Split(' ');
            int bodyAt = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            string body = bodyAt < 0 ? "" : response.Substring(bodyAt + 4).Trim();
            if (statusLine.Length < 2) return null;
            if (statusLine[1] == "401")
            {
                string detail = StripCode(body, "UNAUTHENTICATED: ");
                return new PixelKilnException(StatusCodes.Unauthenticated, "UNAUTHENTICATED",
                    (detail.Length > 0 ? detail : "the daemon refused the handshake (HTTP 401)")
                    + (Token == null
                        ? "; set PixelKilnClientOptions.Token (or PIXELKILN_TOKEN) to a token of the daemon's --token-file"
                        : "; check the token (PixelKilnClientOptions.Token or PIXELKILN_TOKEN): the daemon's admin "
                          + "makes one with `pixelkiln token create NAME`"));
            }
            if (statusLine[1] == "403")
                return new PixelKilnException(StatusCodes.PermissionDenied, "PERMISSION_DENIED",
                    StripCode(body, "PERMISSION_DENIED: ") + " (HTTP 403 on the WebSocket handshake)");
            return null;
        }

        private async Task<string> ReadHandshakeAnswerAsync(Uri uri)
        {
            using (var tcp = new TcpClient())
            {
                await tcp.ConnectAsync(uri.Host, uri.Port).ConfigureAwait(false);
                Stream stream = tcp.GetStream();
                if (uri.Scheme == "wss")
                {
                    X509Certificate2 ca = Ca;
                    string host = uri.Host;
                    var tls = new SslStream(stream, false, (sender, certificate, chain, errors) =>
                        ca == null ? errors == SslPolicyErrors.None : Accepts(ca, host, certificate, errors));
                    await tls.AuthenticateAsClientAsync(uri.Host).ConfigureAwait(false);
                    stream = tls;
                }
                var request = new StringBuilder();
                request.Append("GET ").Append(uri.PathAndQuery).Append(" HTTP/1.1\r\n");
                request.Append("Host: ").Append(uri.Host).Append(':').Append(uri.Port).Append("\r\n");
                request.Append("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
                request.Append("Sec-WebSocket-Key: ").Append(Convert.ToBase64String(Guid.NewGuid().ToByteArray())).Append("\r\n");
                if (Token != null) request.Append("Authorization: Bearer ").Append(Token).Append("\r\n");
                request.Append("\r\n");
                byte[] bytes = Encoding.ASCII.GetBytes(request.ToString());
                await stream.WriteAsync(bytes, 0, bytes.Length).ConfigureAwait(false);
                var received = new MemoryStream();
                var buffer = new byte[4096];
                int read;
                while (received.Length < 16 * 1024
                    && (read = await stream.ReadAsync(buffer, 0, buffer.Length).ConfigureAwait(false)) > 0)
                    received.Write(buffer, 0, read);
                return Encoding.UTF8.GetString(received.ToArray());
            }
        }

        private static string StripCode(string text, string prefix)
        {
            return text.StartsWith(prefix, StringComparison.Ordinal) ? text.Substring(prefix.Length) : text;
        }

        /// <summary>
        /// What the runtime's own check passed (on Mono that includes the registered CAs), an
        /// IP-address host the certificate lists (Mono's name check knows DNS names only), or a
        /// certificate that chains to <paramref name="ca"/>.
        /// </summary>
        internal static bool Accepts(X509Certificate2 ca, string host, X509Certificate certificate, SslPolicyErrors errors)
        {
            if (errors == SslPolicyErrors.None) return true;
            System.Net.IPAddress address;
            if (errors == SslPolicyErrors.RemoteCertificateNameMismatch && certificate != null
                && System.Net.IPAddress.TryParse(host ?? "", out address) && ListsAddress(certificate, address))
                return true;
            return Trusts(ca, certificate, errors);
        }

        /// <summary>
        /// The certificate is valid for the host and chains to <paramref name="ca"/>; nothing else
        /// (not the system's roots) is trusted, as with grpc's <c>root_certificates</c>.
        /// </summary>
        internal static bool Trusts(X509Certificate2 ca, X509Certificate certificate, SslPolicyErrors errors)
        {
            try
            {
                return ChainsTo(ca, certificate, errors);
            }
            catch (Exception)
            {
                return false;  // a certificate this runtime cannot read is not trusted
            }
        }

        private static bool ChainsTo(X509Certificate2 ca, X509Certificate certificate, SslPolicyErrors errors)
        {
            if (certificate == null) return false;
            if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
                return false;
            using (var chain = new X509Chain())
            {
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                chain.ChainPolicy.ExtraStore.Add(ca);
                if (!chain.Build(new X509Certificate2(certificate))) return false;
                X509ChainElement root = chain.ChainElements[chain.ChainElements.Count - 1];
                if (!SameBytes(root.Certificate.RawData, ca.RawData)) return false;
                foreach (X509ChainElement element in chain.ChainElements)
                    foreach (X509ChainStatus status in element.ChainElementStatus)
                        if (status.Status != X509ChainStatusFlags.NoError && status.Status != X509ChainStatusFlags.UntrustedRoot)
                            return false;
                return true;
            }
        }

        /// <summary>A PEM file's path, or PEM text; its first certificate.</summary>
        internal static X509Certificate2 LoadCa(string pathOrPem)
        {
            const string Begin = "-----BEGIN CERTIFICATE-----";
            const string End = "-----END CERTIFICATE-----";
            string pem = pathOrPem;
            if (pathOrPem.IndexOf(Begin, StringComparison.Ordinal) < 0)
            {
                try
                {
                    pem = File.ReadAllText(pathOrPem);
                }
                catch (Exception e)
                {
                    throw new PixelKilnException(StatusCodes.InvalidArgument, "INVALID_ARGUMENT",
                        "RootCertificate: cannot read the CA file '" + pathOrPem + "' (" + e.Message
                        + "); give the PEM file of the CA that signed the daemon's --tls-cert", e);
                }
            }
            int start = pem.IndexOf(Begin, StringComparison.Ordinal);
            int end = start < 0 ? -1 : pem.IndexOf(End, start, StringComparison.Ordinal);
            if (end < 0)
                throw new PixelKilnException(StatusCodes.InvalidArgument, "INVALID_ARGUMENT",
                    "RootCertificate: '" + Shorten(pathOrPem) + "' holds no PEM certificate ("
                    + Begin + "); give the CA's certificate, not its key");
            try
            {
                string body = pem.Substring(start + Begin.Length, end - start - Begin.Length);
                return new X509Certificate2(Convert.FromBase64String(body.Replace("\r", "").Replace("\n", "").Trim()));
            }
            catch (Exception e)
            {
                throw new PixelKilnException(StatusCodes.InvalidArgument, "INVALID_ARGUMENT",
                    "RootCertificate: the certificate in '" + Shorten(pathOrPem) + "' cannot be read: " + e.Message, e);
            }
        }

        /// <summary>The certificate's subjectAltName has this IP address (DER: [7] OCTET STRING).</summary>
        internal static bool ListsAddress(X509Certificate certificate, System.Net.IPAddress address)
        {
            try
            {
                byte[] wanted = address.GetAddressBytes();
                foreach (X509Extension extension in new X509Certificate2(certificate.GetRawCertData()).Extensions)
                {
                    if (extension.Oid.Value != "2.5.29.17") continue;
                    byte[] der = extension.RawData;
                    int at = 0;
                    int end = ReadHeader(der, ref at) + at;  // the GeneralNames SEQUENCE
                    while (at < end)
                    {
                        byte tag = der[at];
                        int length = ReadHeader(der, ref at);
                        if (tag == 0x87 && length == wanted.Length)
                        {
                            bool same = true;
                            for (int i = 0; i < length; i++) same &= der[at + i] == wanted[i];
                            if (same) return true;
                        }
                        at += length;
                    }
                }
            }
            catch (Exception)
            {
                // Unreadable: not listed.
            }
            return false;
        }

        private static int ReadHeader(byte[] der, ref int at)
        {
            at++;  // the tag
            int length = der[at++];
            if (length < 0x80) return length;
            int bytes = length & 0x7f;
            length = 0;
            for (int i = 0; i < bytes; i++) length = (length << 8) | der[at++];
            return length;
        }

        private static string FirstSet(string option, string environment)
        {
            if (!string.IsNullOrWhiteSpace(option)) return option.Trim();
            if (!string.IsNullOrWhiteSpace(environment)) return environment.Trim();
            return null;
        }

        private static string Shorten(string text)
        {
            return text.Length <= 80 ? text : text.Substring(0, 77) + "...";
        }

        private static bool SameBytes(byte[] a, byte[] b)
        {
            if (a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++)
                if (a[i] != b[i]) return false;
            return true;
        }
    }
}
