// Harness for the C# client against a daemon with tokens and TLS
// (tests/clients/test_csharp_security.py compiles it with mcs and runs it with mono).
//
//   mono Secure.exe SCENARIO URL [TOKEN [CA [OTHER_CA]]]
//
// Prints key=value lines and exits 0; an unexpected exception prints "error=..." and exits 1.

using System;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;

public static class Secure
{
    public static int Main(string[] args)
    {
        var watchdog = new Thread(() =>
        {
            Thread.Sleep(TimeSpan.FromSeconds(90));
            Console.Error.WriteLine("watchdog: scenario " + args[0] + " hung");
            Environment.Exit(3);
        });
        watchdog.IsBackground = true;
        watchdog.Start();
        try
        {
            string token = args.Length > 2 ? args[2] : null;
            string ca = args.Length > 3 ? args[3] : null;
            switch (args[0])
            {
                case "generate": Generate(args[1], token, ca).GetAwaiter().GetResult(); break;
                case "plain":
                    Connect("no_token", args[1], null, null).GetAwaiter().GetResult();
                    Generate(args[1], token, null).GetAwaiter().GetResult();
                    break;
                case "refusals":
                    Refusals(args[1], token, ca, args.Length > 4 ? args[4] : null).GetAwaiter().GetResult();
                    break;
                default: throw new ArgumentException("unknown scenario " + args[0]);
            }
            Print("done", "1");
            return 0;
        }
        catch (Exception e)
        {
            Print("error", e.GetType().Name + ": " + e.Message.Replace('\n', ' '));
            Console.Error.WriteLine(e);
            return 1;
        }
    }

    private static void Print(string key, object value)
    {
        Console.WriteLine(key + "=" + value);
    }

    private static PixelKilnClient Client(string url, string token, string ca)
    {
        return new PixelKilnClient(new PixelKilnClientOptions
        {
            Uri = new Uri(url),
            Token = token,
            RootCertificate = ca,
            ConnectAttempts = 2,
            InitialBackoff = TimeSpan.FromMilliseconds(100),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        });
    }

    /// <summary>Token and CA from the options, or (when not given) from the environment.</summary>
    private static async Task Generate(string url, string token, string ca)
    {
        using (PixelKilnClient client = Client(url, token, ca))
        {
            await client.ConnectAsync();
            Print("connected", client.IsConnected);
            Print("status_ready", (await client.StatusAsync()).Ready);
            var request = new GenerateRequest { Prompt = "red brick wall", Width = 64, Height = 64, Steps = 1 };
            request.Seed = 5;
            Result result = await client.GenerateAsync(request, new GenerateHandlers());
            Print("images", result.Images.Count);
            Print("png_bytes", result.Images[0].Image.Data.Length);
            Print("seed", result.Images[0].Seed);
            Print("load", await Code(() => client.LoadModelAsync("tiny-random")));
        }
    }

    /// <summary>What each wrong setting answers; TOKEN and CA are the right ones.</summary>
    private static async Task Refusals(string url, string token, string ca, string otherCa)
    {
        // First: a CA registered by a client is trusted process-wide on Mono afterwards.
        await Connect("no_ca", url, token, null);
        if (otherCa != null) await Connect("other_ca", url, token, otherCa);
        await Connect("no_token", url, null, ca);
        await Connect("wrong_token", url, "pk_not-a-token-of-this-daemon", ca);
        await Connect("plain_ws", "ws" + url.Substring(3), token, ca);
        await Connect("missing_ca_file", url, token, "/nonexistent/pixelkiln-ca.pem");
        await Connect("token_with_space", url, "pk_a b", ca);
    }

    private static async Task Connect(string name, string url, string token, string ca)
    {
        Print(name, await Code(async () =>
        {
            using (PixelKilnClient client = Client(url, token, ca)) await client.ConnectAsync();
        }, name));
    }

    private static async Task<string> Code(Func<Task> call, string name = null)
    {
        try
        {
            await call();
            return "ok";
        }
        catch (PixelKilnException e)
        {
            if (name != null) Print(name + "_message", e.Message.Replace('\n', ' '));
            Print((name ?? "last") + "_connection_error", e is PixelKilnConnectionException);
            return e.CodeName;
        }
    }
}
