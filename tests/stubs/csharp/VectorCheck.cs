// Test harness for the generated C# messages (compiled with mcs by tests/stubs/test_stubs.py).
//
//   mono VectorCheck.exe DIR
//
// For every row "name<TAB>type<TAB>ok|error" of DIR/manifest.tsv: decode DIR/name.bin into the
// generated class of that protobuf type, re-encode it into DIR/name.cs.out, and write a few
// decoded field values to DIR/name.cs.spots ("key=value" lines). Rows marked "error" must
// throw ProtoException. Before that, SelfTest() checks the API semantics (oneof cases,
// presence, parser). Exit code 0 when everything held.

using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Text;
using PixelKiln.Protobuf;
using PixelKiln.StubTest;
using PixelKiln.V1;

public static class VectorCheck
{
    public static int Main(string[] args)
    {
        SelfTest();
        string dir = args[0];
        Dictionary<string, Type> types = new Dictionary<string, Type>();
        foreach (Type t in typeof(VectorCheck).Assembly.GetTypes())
        {
            if (t.IsInterface || !typeof(IProtoMessage).IsAssignableFrom(t)) continue;
            FieldInfo name = t.GetField("ProtoName", BindingFlags.Public | BindingFlags.Static);
            types[(string)name.GetValue(null)] = t;
        }
        int failures = 0;
        foreach (string row in File.ReadAllLines(Path.Combine(dir, "manifest.tsv")))
        {
            if (row.Length == 0) continue;
            string[] cols = row.Split('\t');
            string vector = cols[0];
            bool mustFail = cols[2] == "error";
            try
            {
                byte[] data = File.ReadAllBytes(Path.Combine(dir, vector + ".bin"));
                IProtoMessage message = (IProtoMessage)Activator.CreateInstance(types[cols[1]]);
                try
                {
                    message.MergeFrom(new ProtoReader(data));
                }
                catch (ProtoException)
                {
                    if (mustFail) continue;
                    throw;
                }
                if (mustFail) throw new Exception("malformed input was accepted");
                File.WriteAllBytes(Path.Combine(dir, vector + ".cs.out"), ProtoMessage.ToByteArray(message));
                StringBuilder spots = new StringBuilder();
                Spots(message, spots);
                File.WriteAllText(Path.Combine(dir, vector + ".cs.spots"), spots.ToString(), new UTF8Encoding(false));
            }
            catch (Exception e)
            {
                failures++;
                Console.Error.WriteLine(vector + ": " + e);
            }
        }
        Console.WriteLine("checked vectors, failures: " + failures);
        return failures == 0 ? 0 : 1;
    }

    private static void Put(StringBuilder sb, string key, object value)
    {
        sb.Append(key).Append('=').Append(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
    }

    private static void Spots(IProtoMessage message, StringBuilder sb)
    {
        Scalars s = message as Scalars;
        if (s != null)
        {
            Put(sb, "int32", s.FInt32);
            Put(sb, "int64", s.FInt64);
            Put(sb, "uint64", s.FUint64);
            Put(sb, "sint64", s.FSint64);
            Put(sb, "string", s.FString);
            Put(sb, "enum", (int)s.FEnum);
        }
        AllTypes a = message as AllTypes;
        if (a != null)
        {
            Put(sb, "has_opt_int32", a.HasOptInt32);
            Put(sb, "has_opt_string", a.HasOptString);
            Put(sb, "choice", (int)a.ChoiceCase);
            Put(sb, "other", (int)a.OtherCase);
            Put(sb, "r_int32_count", a.RInt32.Count);
            if (a.REnum.Count > 0) Put(sb, "r_enum_last", (int)a.REnum[a.REnum.Count - 1]);
            Put(sb, "m_string_int32_count", a.MStringInt32.Count);
            if (a.MStringInt32.ContainsKey("ü")) Put(sb, "m_string_int32_u", a.MStringInt32["ü"]);
            int depth = 0;
            for (AllTypes.Types.Nested n = a.Nested; n != null && n.Child != null; n = n.Child) depth++;
            Put(sb, "nested_depth", depth);
            Put(sb, "last", a.Last);
            Put(sb, "class_", a.Class);
        }
        GenerateRequest r = message as GenerateRequest;
        if (r != null)
        {
            Put(sb, "prompt", r.Prompt);
            Put(sb, "seed", r.Seed);
            Put(sb, "has_seed", r.HasSeed);
            Put(sb, "has_guidance_scale", r.HasGuidanceScale);
            Put(sb, "guidance_bits", BitConverter.DoubleToInt64Bits(r.GuidanceScale));
            Put(sb, "init_set", r.InitImage != null);
            if (r.InitImage != null)
            {
                Put(sb, "init_len", r.InitImage.Data.Length);
                Put(sb, "init_last", r.InitImage.Data[r.InitImage.Data.Length - 1]);
            }
            Put(sb, "priority", (int)r.Priority);
            Put(sb, "mask_set", r.Mask != null);
        }
        GenerateEvent e = message as GenerateEvent;
        if (e != null)
        {
            Put(sb, "event_case", (int)e.EventCase);
            if (e.Result != null)
            {
                Put(sb, "images", e.Result.Images.Count);
                Put(sb, "image0_len", e.Result.Images[0].Image.Data.Length);
                Put(sb, "image1_seed", e.Result.Images[1].Seed);
                Put(sb, "recipe_has_seed", e.Result.Recipe.Request.HasSeed);
            }
        }
    }

    private static void Check(bool condition, string what)
    {
        if (!condition) throw new Exception("self test failed: " + what);
    }

    private static void SelfTest()
    {
        GenerateEvent ev = new GenerateEvent();
        Check(ev.EventCase == GenerateEvent.EventOneofCase.None, "oneof starts unset");
        ev.Accepted = new Accepted();
        ev.Queued = new Queued();
        Check(ev.EventCase == GenerateEvent.EventOneofCase.Queued && ev.Accepted == null, "setting a member clears the others");
        ev.Queued = null;
        Check(ev.EventCase == GenerateEvent.EventOneofCase.None, "null clears the case");
        ev.Progress = new Progress();
        ev.ClearEvent();
        Check(ev.Progress == null && ev.EventCase == GenerateEvent.EventOneofCase.None, "ClearEvent");

        GenerateRequest req = new GenerateRequest();
        Check(!req.HasSeed && req.ToByteArray().Length == 0, "optional starts unset");
        req.Seed = 0;
        Check(req.HasSeed && req.ToByteArray().Length == 2, "optional zero is present and written");
        req.ClearSeed();
        Check(!req.HasSeed && req.ToByteArray().Length == 0, "ClearSeed");
        req.Prompt = null;
        Check(req.Prompt == "", "null string reads as empty");

        AllTypes a = new AllTypes();
        a.OString = "x";
        a.PBool = false;
        Check(a.ChoiceCase == AllTypes.ChoiceOneofCase.OString && a.OtherCase == AllTypes.OtherOneofCase.PBool, "two oneofs are independent");
        a.OInt32 = 0;
        Check(a.OString == "" && a.ChoiceCase == AllTypes.ChoiceOneofCase.OInt32, "scalar members switch");
        a.Scalars = new Scalars();
        a.Scalars.FEnum = (Color)99;
        a.Scalars.FUint64 = ulong.MaxValue;
        a.REnum.Add((Color)(-1));
        a.MStringInt32["k"] = 1;
        // Fields whose names clash with generated members or the class get a "_" suffix.
        a.AllTypes_ = "a";
        a.Parser_ = 1;
        a.Types_ = 2;
        a.Class = "c";
        a.ToBytes = new byte[] { 1 };
        AllTypes copy = AllTypes.Parser.ParseFrom(a.ToByteArray());
        Check((int)copy.Scalars.FEnum == 99 && copy.REnum[0] == Color.Negative, "unknown and negative enum values survive");
        Check(copy.Scalars.FUint64 == ulong.MaxValue, "uint64 max survives");
        Check(copy.OInt32 == 0 && copy.ChoiceCase == AllTypes.ChoiceOneofCase.OInt32, "oneof zero survives");
        Check(copy.AllTypes_ == "a" && copy.Parser_ == 1 && copy.Types_ == 2 && copy.ToBytes[0] == 1, "renamed members");
        Check(copy.Clone().MStringInt32["k"] == 1, "Clone");
        bool threw = false;
        try
        {
            AllTypes.Parser.ParseFrom(new byte[] { 8, 255 });
        }
        catch (ProtoException)
        {
            threw = true;
        }
        Check(threw, "truncated input throws ProtoException");
        Console.WriteLine("self test passed");
    }
}
