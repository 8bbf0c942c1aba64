// End-to-end harness for the C# client (tests/clients/test_csharp_client.py compiles it with mcs
// together with clients/csharp/{Runtime,Generated,Client} and runs it with mono).
//
//   mono E2E.exe SCENARIO URL [ARG]
//
// Each scenario prints key=value lines for the Python test to check and exits 0; an unexpected
// exception prints "error=..." and exits 1; a scenario that hangs is killed by the watchdog (exit 3).

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PixelKiln.Client;
using PixelKiln.V1;

public static class E2E
{
    private static readonly object printLock = new object();

    public static int Main(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: E2E.exe SCENARIO URL [ARG]");
            return 2;
        }
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
            Run(args[0], args[1], args.Length > 2 ? args[2] : null).GetAwaiter().GetResult();
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

    private static Task Run(string scenario, string url, string arg)
    {
        switch (scenario)
        {
            case "generate": return Generate(url, arg);
            case "cancel": return Cancel(url);
            case "live": return Live(url, arg);
            case "liveoptions": return LiveOptionsScenario(url, arg);
            case "error": return Errors(url);
            case "down": return Down(url);
            case "wrongport": return WrongPort(url);
            case "fake": return Fake(url);
            default: throw new ArgumentException("unknown scenario " + scenario);
        }
    }

    private static void Print(string key, object value)
    {
        lock (printLock) Console.WriteLine(key + "=" + value);
    }

    private static PixelKilnClient Connectable(string url)
    {
        var options = new PixelKilnClientOptions { Uri = new Uri(url), ConnectAttempts = 3, InitialBackoff = TimeSpan.FromMilliseconds(100) };
        return new PixelKilnClient(options);
    }

    // ---- against the real daemon ---------------------------------------------------------

    private static async Task Generate(string url, string outDir)
    {
        using (PixelKilnClient client = Connectable(url))
        {
            await client.ConnectAsync();
            Print("connected", client.IsConnected);
            StatusResponse status = await client.StatusAsync();
            Print("status_ready", status.Ready);
            Print("status_max_message_bytes", status.MaxMessageBytes);
            ListModelsResponse models = await client.ListModelsAsync();
            Print("default_model", models.DefaultModel);
            Print("models", string.Join(",", models.Models.Select(m => m.Name)));
            ModelInfo loaded = await client.LoadModelAsync("tiny-random");
            Print("loaded", loaded.Name + ":" + loaded.Loaded);

            // Two generations at once on one connection: each must get only its own events.
            var first = new GenerateRequest { Prompt = "mossy cobblestone", Width = 96, Height = 64, Steps = 3 };
            first.Seed = 7;
            first.Preview = new PreviewSettings { EveryNSteps = 1 };
            var second = new GenerateRequest { Prompt = "gold coin", Width = 64, Height = 64, Steps = 2, NumImages = 2 };
            second.Seed = 11;
            var firstEvents = new List<string>();
            var secondEvents = new List<string>();
            Task<Result> a = client.GenerateAsync(first, Recorder(firstEvents));
            Task<Result> b = client.GenerateAsync(second, Recorder(secondEvents));
            Result[] results = await Task.WhenAll(a, b);
            Print("first_id", first.ClientRequestId);
            Print("first_events", string.Join(",", firstEvents));
            Print("second_events", string.Join(",", secondEvents));
            Print("first_images", results[0].Images.Count);
            Print("second_images", results[1].Images.Count);
            Print("first_seed", results[0].Images[0].Seed);
            Print("first_recipe_has_json", results[0].Recipe != null && results[0].Recipe.Json.Length > 0);
            // No events handler: the request asks for the Result alone, and it comes.
            var quiet = new GenerateRequest { Prompt = "gold coin", Width = 64, Height = 64, Steps = 2 };
            quiet.Seed = 11;
            Result quietResult = await client.GenerateAsync(quiet);
            var heard = new GenerateRequest { Prompt = "gold coin", Width = 64, Height = 64, Steps = 2 };
            heard.Seed = 11;
            var heardEvents = new List<string>();
            Result heardResult = await client.GenerateAsync(heard, Recorder(heardEvents));
            Print("quiet_result_only", quiet.Preview.ResultOnly + ":" + (heard.Preview != null && heard.Preview.ResultOnly));
            Print("heard_events", string.Join(",", heardEvents));
            Print("quiet_same_image", quietResult.Images[0].Image.Data.SequenceEqual(heardResult.Images[0].Image.Data));

            IList<SavedFile> saved = ResultFiles.Save(results[0], outDir, "stone");
            foreach (SavedFile file in saved) Print("saved", Path.GetFileName(file.Path));
            IList<SavedFile> savedTwo = ResultFiles.Save(results[1], outDir, "coin");
            foreach (SavedFile file in savedTwo) Print("saved", Path.GetFileName(file.Path));
            // Saving again replaces atomically and leaves no temporary file behind.
            ResultFiles.Save(results[0], outDir, "stone");
            Print("leftover_temp", Directory.GetFiles(outDir, "*.tmp").Length + Directory.GetFiles(outDir, ".*").Length);
        }
    }

    private static GenerateHandlers Recorder(List<string> seen)
    {
        return new GenerateHandlers
        {
            Accepted = x => seen.Add("accepted"),
            Queued = x => seen.Add("queued"),
            Progress = x => seen.Add("progress" + x.Step + "/" + x.Total),
            Preview = x => seen.Add("preview" + x.Step),
            Result = x => seen.Add("result"),
        };
    }

    private static async Task Cancel(string url)
    {
        using (PixelKilnClient client = Connectable(url))
        {
            // 1. A cancelled token: the daemon confirms CANCELLED, the task ends cancelled.
            var slow = new GenerateRequest { Prompt = "slow", Width = 256, Height = 256, Steps = 40 };
            slow.Seed = 1;
            var cts = new CancellationTokenSource();
            int steps = 0;
            var clock = new Stopwatch();
            var events = new GenerateHandlers
            {
                Progress = p =>
                {
                    Interlocked.Increment(ref steps);
                    if (p.Step == 1)
                    {
                        clock.Start();
                        cts.Cancel();
                    }
                },
            };
            try
            {
                await client.GenerateAsync(slow, events, cts.Token);
                Print("token_cancel", "completed");
            }
            catch (OperationCanceledException)
            {
                Print("token_cancel", "cancelled");
            }
            Print("token_cancel_ms", clock.ElapsedMilliseconds);
            Print("token_cancel_steps", steps);

            // 2. CancelAsync by id from elsewhere: the generation fails with CANCELLED.
            var other = new GenerateRequest { Prompt = "slow too", Width = 256, Height = 256, Steps = 40 };
            var started = new TaskCompletionSource<bool>();
            Task<Result> running = client.GenerateAsync(other, new GenerateHandlers { Progress = p => started.TrySetResult(true) });
            await started.Task;
            bool acknowledged = await client.CancelAsync(other.ClientRequestId);
            Print("cancel_ack", acknowledged);
            try
            {
                await running;
                Print("id_cancel", "completed");
            }
            catch (PixelKilnException e)
            {
                Print("id_cancel", e.CodeName);
                Print("id_cancel_code", e.Code);
            }
            Print("cancel_unknown", await client.CancelAsync("no-such-request"));
            StatusResponse status = await client.StatusAsync();
            Print("status_after", status.Ready ? "ready" : "not-ready");
            Print("running_after", status.Running);
        }
    }

    private static async Task Live(string url, string sketchPath)
    {
        byte[] sketch = File.ReadAllBytes(sketchPath);
        using (PixelKilnClient client = Connectable(url))
        {
            var settings = new LiveSettings { Prompt = "moss", Strength = 0.5f, Steps = 2, Seed = 3 };
            LiveSession live = await client.OpenLiveAsync(settings);
            int events = 0;
            live.FrameReceived += f => Interlocked.Increment(ref events);
            var firstFrame = new TaskCompletionSource<LiveFrame>();
            live.FrameReceived += f => firstFrame.TrySetResult(f);
            live.Send(sketch);
            await firstFrame.Task;                          // the first input is answered...
            live.Send(sketch);                              // ...then two more back to back: the
            ulong last = live.UpdateSettings(new LiveSettings { Prompt = "lava" });  // same image, new prompt
            Print("last_sent", last);
            Task ending = live.End();
            var seqs = new List<ulong>();
            LiveFrame frame;
            LiveFrame firstWithImage = null;
            while ((frame = await live.ReadFrameAsync()) != null)
            {
                seqs.Add(frame.Seq);
                if (firstWithImage == null && frame.Image != null && frame.Image.Data.Length > 0) firstWithImage = frame;
            }
            await ending;
            Print("frame_seqs", string.Join(",", seqs));
            Print("last_frame_seq", seqs.Count > 0 ? seqs[seqs.Count - 1] : 0);
            Print("frame_events", Volatile.Read(ref events));
            Print("first_seed", firstWithImage == null ? 0 : firstWithImage.Seed);
            if (firstWithImage != null)
            {
                string output = Path.Combine(Path.GetDirectoryName(sketchPath), "live_frame" + Images.Extension(firstWithImage.Image.Encoding));
                AtomicFile.WriteAllBytes(output, firstWithImage.Image.Data);
                Print("frame_file", Path.GetFileName(output));
            }
            Print("completion", live.Completion.Status);
            try
            {
                live.Send(sketch);
                Print("send_after_end", "accepted");
            }
            catch (InvalidOperationException)
            {
                Print("send_after_end", "refused");
            }
        }
    }

    // The live options set on a Send after open (merged with the open settings), raw frames, the
    // similar skip, and stream batch with its flush by sending the last input again.
    private static async Task LiveOptionsScenario(string url, string folder)
    {
        byte[] first = File.ReadAllBytes(Path.Combine(folder, "a.png"));
        byte[] nearly = File.ReadAllBytes(Path.Combine(folder, "b.png"));
        using (PixelKilnClient client = Connectable(url))
        {
            var open = new LiveSettings { Prompt = "moss", Strength = 0.5f, Steps = 2, Seed = 3 };
            LiveSession live = await client.OpenLiveAsync(open);
            live.Send(first, new LiveSettings
            {
                OutputEncoding = Encoding.RawRgba8, TinyAutoencoder = true, SimilarSkipThreshold = 0.5f, SimilarSkipMax = 3,
            });
            LiveFrame raw = await live.ReadFrameAsync();
            Print("raw_seq", raw.Seq);
            Print("raw_encoding", raw.Image.Encoding);
            Print("raw_size", raw.Image.Width + "x" + raw.Image.Height + ":" + raw.Image.Data.Length);
            Print("raw_describe", LiveOptions.Describe(raw));
            File.WriteAllBytes(Path.Combine(folder, "frame.rgba"), raw.Image.Data);
            live.Send(nearly);
            LiveFrame similar = await live.ReadFrameAsync();
            Print("similar_seq", similar.Seq);
            Print("similar", similar.Similar + ":" + LiveOptions.HasImage(similar));
            Print("similar_describe", LiveOptions.Describe(similar));
            await live.End();
        }
        using (PixelKilnClient client = Connectable(url))
        {
            LiveSession live = await client.OpenLiveAsync(new LiveSettings { Prompt = "moss", Strength = 0.5f, Steps = 4, Seed = 3 });
            live.Send(first, new LiveSettings { StreamBatch = true, OutputEncoding = Encoding.RawRgba8 });
            // Two denoising steps to batch (one would run alone). The first input fills the stream;
            // the same input again brings its frame out.
            Task<LiveFrame> next = live.ReadFrameAsync();
            LiveFrame streamed = null;
            var seen = new List<string>();
            while (streamed == null)
            {
                if (await Task.WhenAny(next, Task.Delay(500)) != next)
                {
                    live.Send(first);
                    continue;
                }
                LiveFrame frame = await next;
                seen.Add(frame.Seq + (LiveOptions.HasImage(frame) ? "i" : ""));
                if (LiveOptions.HasImage(frame)) streamed = frame;
                else next = live.ReadFrameAsync();
            }
            Print("stream_seen", string.Join(",", seen));
            Print("stream_answers_earlier", streamed.Seq < live.LastSentSeq);
            Print("stream_describe", LiveOptions.Describe(streamed));
            await live.End();
        }
        var replayed = new LiveFrame { Seq = 7, GraphCalls = 4, Timings = new LiveTimings { TotalMs = 12f } };
        Print("graphs_describe", LiveOptions.Describe(replayed));
    }

    private static async Task Errors(string url)
    {
        using (PixelKilnClient client = Connectable(url))
        {
            try
            {
                await client.GenerateAsync(new GenerateRequest { Prompt = "x", Width = 100 });
                Print("width_error", "none");
            }
            catch (PixelKilnException e)
            {
                Print("width_error", e.CodeName);
                Print("width_code", e.Code);
                Print("width_detail", e.Detail);
                Print("width_is_connection_error", e is PixelKilnConnectionException);
            }
            try
            {
                await client.GenerateAsync(new GenerateRequest { Prompt = "x", Model = "no-such-model" });
            }
            catch (PixelKilnException e)
            {
                Print("model_error", e.CodeName);
            }
            try
            {
                await client.LoadModelAsync("no-such-model");
            }
            catch (PixelKilnException e)
            {
                Print("load_error", e.CodeName);
            }
            // The connection survives its errors.
            StatusResponse status = await client.StatusAsync();
            Print("status_after", status.Ready);
        }
    }

    // ---- no daemon, wrong port ---------------------------------------------------------------

    private static async Task Down(string url)
    {
        var options = new PixelKilnClientOptions
        {
            Uri = new Uri(url),
            ConnectAttempts = 3,
            InitialBackoff = TimeSpan.FromMilliseconds(100),
            ConnectTimeout = TimeSpan.FromSeconds(3),
        };
        using (var client = new PixelKilnClient(options))
        {
            var clock = Stopwatch.StartNew();
            try
            {
                await client.ConnectAsync();
                Print("connect", "succeeded");
            }
            catch (PixelKilnConnectionException e)
            {
                Print("connect", "failed");
                Print("connect_code", e.CodeName);
                Print("connect_message", e.Message.Replace('\n', ' '));
            }
            Print("connect_ms", clock.ElapsedMilliseconds);
            // A call made while disconnected tries to connect (AutoReconnect) and fails the same way.
            try
            {
                await client.StatusAsync();
                Print("call", "succeeded");
            }
            catch (PixelKilnConnectionException e)
            {
                Print("call", "failed:" + e.CodeName);
            }
            options.AutoReconnect = false;
            using (var strict = new PixelKilnClient(options))
            {
                try
                {
                    await strict.StatusAsync();
                }
                catch (PixelKilnConnectionException e)
                {
                    Print("strict_call", e.Detail);
                }
            }
        }
    }

    private static async Task WrongPort(string url)
    {
        var options = new PixelKilnClientOptions
        {
            Uri = new Uri(url),
            ConnectAttempts = 2,
            InitialBackoff = TimeSpan.FromMilliseconds(100),
            ConnectTimeout = TimeSpan.FromSeconds(2),
        };
        using (var client = new PixelKilnClient(options))
        {
            var clock = Stopwatch.StartNew();
            try
            {
                await client.ConnectAsync();
                Print("connect", "succeeded");
            }
            catch (PixelKilnConnectionException e)
            {
                Print("connect", "failed");
                Print("connect_message", e.Message.Replace('\n', ' '));
            }
            Print("connect_ms", clock.ElapsedMilliseconds);
        }
    }

    // ---- a scripted fake daemon (tests/clients/test_csharp_client.py) ------------------------

    private static async Task Fake(string url)
    {
        using (PixelKilnClient client = Connectable(url))
        {
            int disconnects = 0;
            string disconnectReason = "";
            client.Disconnected += e =>
            {
                Interlocked.Increment(ref disconnects);
                disconnectReason = e.Detail;
            };
            await client.ConnectAsync();   // the fake answers the status handshake in fragments
            Print("handshake_version_length", client.ServerStatus.Version.Length);
            StatusResponse status = await client.StatusAsync();   // a 150 kB answer in 3 fragments
            Print("status_version_prefix", status.Version.Substring(0, 5));
            Print("status_version_length", status.Version.Length);
            Print("status_loaded", string.Join(",", status.LoadedModels));

            // The fake reports a 4096-byte limit: a bigger frame is refused before it is sent.
            var big = new GenerateRequest { Prompt = "big", InitImage = new Image { Data = new byte[8192], Encoding = Encoding.Png } };
            big.Strength = 0.5f;
            try
            {
                await client.GenerateAsync(big);
                Print("oversized", "sent");
            }
            catch (PixelKilnException e)
            {
                Print("oversized", e.CodeName);
                Print("oversized_detail", e.Detail);
            }
            Print("connected_after_oversized", client.IsConnected);

            // The fake accepts this request, then drops the connection without a close frame.
            var accepted = new TaskCompletionSource<bool>();
            var clock = Stopwatch.StartNew();
            try
            {
                await client.GenerateAsync(new GenerateRequest { Prompt = "drop" },
                    new GenerateHandlers { Accepted = x => accepted.TrySetResult(true) });
                Print("dropped", "completed");
            }
            catch (PixelKilnConnectionException e)
            {
                Print("dropped", e.CodeName);
                Print("dropped_message", e.Detail);
            }
            Print("dropped_ms", clock.ElapsedMilliseconds);
            Print("saw_accepted", accepted.Task.IsCompleted);
            for (int i = 0; i < 100 && Volatile.Read(ref disconnects) == 0; i++) await Task.Delay(10);
            Print("disconnected_events", Volatile.Read(ref disconnects));
            Print("disconnect_reason_set", disconnectReason.Length > 0);

            // AutoReconnect: the next call connects again.
            StatusResponse again = await client.StatusAsync();
            Print("reconnected_version_length", again.Version.Length);
        }
    }
}
