using PixelKiln.Client;
using UnityEditor;
using UnityEngine;

namespace PixelKiln.Unity.Editor
{
    /// <summary>
    /// The window's token and TLS settings for a daemon on a studio network (README "Running on a
    /// studio network"). Kept in EditorPrefs, per user and machine, never in the project: a token
    /// must not end up in version control. Empty fields fall back to the environment variables
    /// PIXELKILN_TOKEN and PIXELKILN_TLS_CA (read by the client).
    /// </summary>
    internal sealed class DaemonSecurity
    {
        private const string TokenKey = "PixelKiln.Token";
        private const string CaKey = "PixelKiln.TlsCa";
        private const string TlsKey = "PixelKiln.UseTls";

        /// <summary>The daemon's token (pixelkiln token create NAME), or empty.</summary>
        public string Token { get; private set; }

        /// <summary>The PEM file of the CA that signed the daemon's --tls-cert, or empty.</summary>
        public string CaPath { get; private set; }

        /// <summary>Connect with wss:// (the daemon was started with --tls-cert).</summary>
        public bool UseTls { get; private set; }

        /// <summary>ws or wss.</summary>
        public string Scheme
        {
            get { return UseTls ? "wss" : "ws"; }
        }

        /// <summary>Changes when a client made with the old settings must be replaced.</summary>
        public string Key
        {
            get { return Scheme + "\n" + Token + "\n" + CaPath; }
        }

        public static DaemonSecurity Load()
        {
            return new DaemonSecurity
            {
                Token = EditorPrefs.GetString(TokenKey, ""),
                CaPath = EditorPrefs.GetString(CaKey, ""),
                UseTls = EditorPrefs.GetBool(TlsKey, false),
            };
        }

        public void Apply(PixelKilnClientOptions options)
        {
            options.Token = Token;
            options.RootCertificate = UseTls ? CaPath : null;
        }

        /// <summary>The fields, saved to EditorPrefs as they change.</summary>
        public void Draw()
        {
            EditorGUILayout.LabelField("Studio network", EditorStyles.miniBoldLabel);
            string token = EditorGUILayout.PasswordField(new GUIContent("Token",
                "pixelkiln serve --token-file: a token made by `pixelkiln token create NAME`. Stored in EditorPrefs "
                + "(this user, this machine), not in the project. Empty: $PIXELKILN_TOKEN"), Token);
            bool useTls = EditorGUILayout.Toggle(new GUIContent("TLS (wss://)",
                "The daemon was started with --tls-cert/--tls-key"), UseTls);
            string caPath = CaPath;
            if (useTls)
            {
                EditorGUILayout.BeginHorizontal();
                caPath = EditorGUILayout.TextField(new GUIContent("CA certificate",
                    "PEM file of the CA that signed the daemon's certificate. Empty: $PIXELKILN_TLS_CA, else the "
                    + "system's trust store"), CaPath);
                if (GUILayout.Button("...", GUILayout.Width(28)))
                {
                    string picked = EditorUtility.OpenFilePanel("CA certificate (PEM)", "", "pem,crt,cer");
                    if (!string.IsNullOrEmpty(picked)) caPath = picked;
                }
                EditorGUILayout.EndHorizontal();
            }
            if (token != Token) EditorPrefs.SetString(TokenKey, token);
            if (caPath != CaPath) EditorPrefs.SetString(CaKey, caPath);
            if (useTls != UseTls) EditorPrefs.SetBool(TlsKey, useTls);
            Token = token;
            CaPath = caPath;
            UseTls = useTls;
        }
    }
}
