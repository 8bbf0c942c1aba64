// Mono's process-wide TLS hooks, so that a ClientSecurity CA is trusted by Mono's ClientWebSocket
// (Unity, mono). Hand-written.

using System;
using System.Collections.Generic;
using System.Linq;
using System.Linq.Expressions;
using System.Net.Security;
using System.Reflection;
using System.Security.Cryptography.X509Certificates;

namespace PixelKiln.Client
{
    internal sealed partial class ClientSecurity
    {
        /// <summary>
        /// Mono's ClientWebSocket makes its SslStream without a callback: the hooks are the
        /// process-wide <c>MonoTlsSettings.DefaultSettings</c>. Its trust anchors become the system's
        /// roots plus every CA a client registered (Mono's TLS checks the chain itself; its managed
        /// X509Chain cannot read EC keys), and one callback accepts what that check passed, plus an
        /// IP-address host listed in the certificate (Mono's name check knows DNS names only); the
        /// rest goes to a callback that was there before, or is refused.
        /// </summary>
        private static class MonoTrust
        {
            private static readonly object Gate = new object();
            private static readonly List<X509Certificate2> Cas = new List<X509Certificate2>();
            private static object defaults;
            private static PropertyInfo anchors;
            private static Delegate previous;
            private static bool tried;

            public static void Register(X509Certificate2 ca)
            {
                if (Type.GetType("Mono.Runtime") == null) return;
                lock (Gate)
                {
                    foreach (X509Certificate2 known in Cas)
                        if (SameBytes(known.RawData, ca.RawData)) return;
                    Cas.Add(ca);
                    if (!tried)
                    {
                        tried = true;
                        Install();
                    }
                    if (anchors == null) return;
                    var trusted = new X509CertificateCollection();
                    foreach (StoreLocation location in new[] { StoreLocation.CurrentUser, StoreLocation.LocalMachine })
                    {
                        try
                        {
                            using (var store = new X509Store(StoreName.Root, location))
                            {
                                store.Open(OpenFlags.ReadOnly);
                                trusted.AddRange(store.Certificates);
                            }
                        }
                        catch (Exception)
                        {
                            // No such store here: the registered CAs still count.
                        }
                    }
                    foreach (X509Certificate2 known in Cas) trusted.Add(known);
                    anchors.SetValue(defaults, trusted, null);
                }
            }

            private static void Install()
            {
                try
                {
                    Type settings = Assembly.Load(
                        "Mono.Security, Version=4.0.0.0, Culture=neutral, PublicKeyToken=0738eb9f132ed756")
                        .GetType("Mono.Security.Interface.MonoTlsSettings");
                    object found = settings.GetProperty("DefaultSettings").GetValue(null, null);
                    PropertyInfo callback = settings.GetProperty("RemoteCertificateValidationCallback");
                    ParameterInfo[] signature = callback.PropertyType.GetMethod("Invoke").GetParameters();
                    var parameters = new ParameterExpression[signature.Length];
                    for (int i = 0; i < signature.Length; i++)
                        parameters[i] = Expression.Parameter(signature[i].ParameterType, signature[i].Name);
                    // (host, certificate, chain, MonoSslPolicyErrors) -> Check(host, certificate, (SslPolicyErrors)(int)errors, args)
                    Expression errors = Expression.Convert(Expression.Convert(parameters[3], typeof(int)), typeof(SslPolicyErrors));
                    Expression args = Expression.NewArrayInit(typeof(object),
                        parameters.Select(p => (Expression)Expression.Convert(p, typeof(object))));
                    MethodInfo check = typeof(MonoTrust).GetMethod("Check", BindingFlags.Static | BindingFlags.NonPublic);
                    Expression body = Expression.Call(check, parameters[0], parameters[1], errors, args);
                    Delegate compiled = Expression.Lambda(callback.PropertyType, body, parameters).Compile();
                    previous = (Delegate)callback.GetValue(found, null);
                    callback.SetValue(found, compiled, null);
                    defaults = found;
                    anchors = settings.GetProperty("TrustAnchors");
                }
                catch (Exception)
                {
                    // Not Mono's TLS stack: the socket's own callback is the check.
                }
            }

            private static bool Check(string host, X509Certificate certificate, SslPolicyErrors errors, object[] args)
            {
                X509Certificate2[] cas;
                lock (Gate) cas = Cas.ToArray();
                foreach (X509Certificate2 ca in cas)
                    if (Accepts(ca, host, certificate, errors)) return true;
                if (previous != null) return (bool)previous.DynamicInvoke(args);
                return false;
            }
        }
    }
}
