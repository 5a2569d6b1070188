import Foundation
@testable import Reports
import TestSupport
import Vocabulary
import XCTest

/// The report's JSON: reports written before the fields were typed (schema 1,
/// by the pre-change binary) decode, and encode back to the same bytes.
final class RunReportCodingTests: XCTestCase {
    static let fixtures = Launcher.repoRoot.appendingPathComponent("Tests/ReportsTests/Fixtures")

    func encoded(_ r: RunReport) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(r)
    }

    func decoded(_ data: Data) throws -> RunReport {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RunReport.self, from: data)
    }

    func testOldReportsDecodeAndEncodeToTheSameBytes() throws {
        for name in ["schema1-train-2ranks-fp16.json", "schema1-forward-backward-1rank.json"] {
            let path = RunReportCodingTests.fixtures.appendingPathComponent(name).path
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            let report = try RunReport.read(from: path)
            XCTAssertEqual(report.schema, 1)
            XCTAssertEqual(String(decoding: try encoded(report), as: UTF8.self), String(decoding: original, as: UTF8.self), name)
        }
    }

    func testTypedFieldsOfAnOldReport() throws {
        let r = try RunReport.read(from: RunReportCodingTests.fixtures.appendingPathComponent("schema1-train-2ranks-fp16.json").path)
        XCTAssertEqual(r.model, .vgg11)
        XCTAssertEqual(r.mode, .train)
        XCTAssertEqual(r.conv, .auto)
        XCTAssertEqual(r.allreduceDtype, .fp16)
        XCTAssertEqual(r.convPerLayer?.first, RunReport.ConvChoice(layer: "conv1_1", algorithm: .winograd4))
        XCTAssertEqual(r.convPerLayer?.count, 8, "one per convolution of VGG-11")
        // Buckets: the plan's type, layer indices into the report's layers.
        let names = r.layers.map(\.name)
        XCTAssertEqual(r.buckets.count, 8)
        for (b, record) in r.buckets.enumerated() {
            XCTAssertEqual(record.bucket.index, b)
            XCTAssertEqual(record.bucket.layers.map { names[$0] }, record.layerNames)
        }
        XCTAssertEqual(r.buckets[0].layerNames, ["fc8", "fc7"])
        XCTAssertEqual(r.buckets[0].bucket.lowestLayer, names.firstIndex(of: "fc7"))
        XCTAssertEqual(r.buckets[1].bucket, Bucket(index: 1, layers: [names.firstIndex(of: "fc6")!], offset: 144_560, count: 33_280))
        XCTAssertEqual(r.buckets[1].bucket.bytes, 133_120)
        XCTAssertEqual(r.buckets[1].allreduceSeconds, 0.0009973720000076014)
    }

    func testNewFieldsEncodeAsBefore() throws {
        var r = ReportFixture.make(mode: .forwardBackward)
        r.conv = .winograd6
        r.allreduceDtype = .bf16
        r.convPerLayer = [.init(layer: "conv1_1", algorithm: .im2col), .init(layer: "conv2_1", algorithm: .winograd2)]
        r.layers = ["fc7", "fc8"].map {
            RunReport.Layer(name: $0, forwardSeconds: 0, backwardSeconds: 0, forwardGemmSeconds: 0, backwardGemmSeconds: 0,
                            forwardFlops: 0, backwardFlops: 0, forwardGflopsPerSecond: 0, backwardGflopsPerSecond: 0)
        }
        r.buckets = [.init(bucket: Bucket(index: 0, layers: [1, 0], offset: 10, count: 30), layerNames: ["fc8", "fc7"],
                           allreduceSeconds: 0.5)]
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: try encoded(r)) as? [String: Any])
        XCTAssertEqual(json["mode"] as? String, "forward-backward")
        XCTAssertEqual(json["model"] as? String, "vgg11")
        XCTAssertEqual(json["conv"] as? String, "winograd6x6")
        XCTAssertEqual(json["allreduce_dtype"] as? String, "bf16")
        XCTAssertEqual(json["conv_per_layer"] as? [String], ["conv1_1:im2col", "conv2_1:winograd2x2"])
        let bucket = try XCTUnwrap((json["buckets"] as? [[String: Any]])?.first)
        XCTAssertEqual(Set(bucket.keys), ["index", "layers", "offset", "count", "bytes", "allreduce_seconds"])
        XCTAssertEqual(bucket["layers"] as? [String], ["fc8", "fc7"])
        XCTAssertEqual(bucket["bytes"] as? Int, 120)
        XCTAssertEqual(bucket["offset"] as? Int, 10)
        // And back.
        let back = try decoded(try encoded(r))
        XCTAssertEqual(back.buckets, r.buckets)
        XCTAssertEqual(back.convPerLayer, r.convPerLayer)
        XCTAssertEqual(try encoded(back), try encoded(r))
    }

    /// The memory plan: absent from old reports (which still decode, see
    /// above), one snake_case object with per-layer rows when present, and
    /// one line of the text report.
    func testMemoryPlanEncodesDecodesAndPrints() throws {
        XCTAssertNil(try RunReport.read(from: RunReportCodingTests.fixtures.appendingPathComponent("schema1-train-2ranks-fp16.json").path).memory)
        var r = ReportFixture.make(mode: .train, peakRssBytes: 3 << 30)
        XCTAssertFalse(r.closingLines.contains("memory per rank"))
        let conv = MemoryReport.Row(name: "conv1_1", parameters: 4, gradients: 4, optimizerState: 4, activations: 64,
                                    workspace: 32, masks: 0)
        let pool = MemoryReport.Row(name: "pool1", parameters: 0, gradients: 0, optimizerState: 0, activations: 32,
                                    workspace: 0, masks: 8)
        XCTAssertEqual(conv.total, 108)
        r.memory = MemoryReport(purpose: "training", batchPerRank: 8, layers: [conv, pool],
                                total: .init(name: "total", parameters: 4, gradients: 4, optimizerState: 4,
                                             activations: 1 << 30, workspace: 32, masks: 8),
                                activationsWithoutReuse: 96, inputBytes: 16)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: try encoded(r)) as? [String: Any])
        let memory = try XCTUnwrap(json["memory"] as? [String: Any])
        XCTAssertEqual(memory["purpose"] as? String, "training")
        XCTAssertEqual(memory["activations_without_reuse"] as? Int, 96)
        let layers = try XCTUnwrap(memory["layers"] as? [[String: Any]])
        XCTAssertEqual(Set(layers[0].keys), ["name", "parameters", "gradients", "optimizer_state", "activations", "workspace",
                                             "masks", "total"])
        XCTAssertEqual((memory["total"] as? [String: Any])?["total"] as? Int, (1 << 30) + 52)
        let back = try decoded(try encoded(r))
        XCTAssertEqual(back.memory, r.memory)
        XCTAssertEqual(try encoded(back), try encoded(r))
        let line = try XCTUnwrap(r.closingLines.split(separator: "\n").last)
        XCTAssertEqual(String(line), "memory per rank (plan, training): parameters 0.0 + gradients 0.0 + optimizer 0.0"
                       + " + activations 1024.0 + workspace 0.0 + masks 0.0 = 1024.0 MiB; peak RSS 3072 MiB")
    }

    /// A JSON object from the old report, changed by `edit`.
    func oldReport(_ edit: (inout [String: Any]) -> Void) throws -> Data {
        let path = RunReportCodingTests.fixtures.appendingPathComponent("schema1-train-2ranks-fp16.json")
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any])
        edit(&json)
        return try JSONSerialization.data(withJSONObject: json)
    }

    func testBadValuesAreDecodingErrorsThatSayWhat() throws {
        let unknownLayer = try oldReport { json in
            var buckets = json["buckets"] as! [[String: Any]]
            buckets[0]["layers"] = ["b"]
            json["buckets"] = buckets
        }
        XCTAssertThrowsError(try decoded(unknownLayer)) { e in
            XCTAssertTrue("\(e)".contains("names layer b"), "\(e)")
        }
        let badConv = try oldReport { $0["conv_per_layer"] = ["conv1_1:fft"] }
        XCTAssertThrowsError(try decoded(badConv)) { e in XCTAssertTrue("\(e)".contains("conv1_1:fft"), "\(e)") }
        let badMode = try oldReport { $0["mode"] = "sideways" }
        XCTAssertThrowsError(try decoded(badMode))
        let noBytes = try oldReport { json in
            var buckets = json["buckets"] as! [[String: Any]]
            buckets[0]["bytes"] = nil
            json["buckets"] = buckets
        }
        XCTAssertThrowsError(try decoded(noBytes), "bytes stays a required key, as before")
        // Optional fields may be missing, as before (a baseline's report has none of them).
        let minimal = try oldReport { json in
            for key in ["conv", "conv_per_layer", "allreduce_dtype", "comm_wait", "objective", "note", "skipped_steps",
                        "peak_gflops_per_rank", "peak_share", "blas_kernel_choice", "openblas_coretype"] { json[key] = nil }
        }
        let r = try decoded(minimal)
        XCTAssertNil(r.conv)
        XCTAssertNil(r.convPerLayer)
        XCTAssertNil(r.allreduceDtype)
    }

    func testTimingsRoundTripThroughJSON() throws {
        var s = StepTimes()
        s.wall = 1.5; s.exposed = 0.25; s.loss = 2.3
        s.forward = 0.1 + 0.2  // not a short decimal: JSON must still carry it exactly
        var t = RankTimings(steps: [s, StepTimes()], layerMeans: [LayerTimes(forward: 1, backward: 2, forwardGemm: 0.5)],
                            bucketMeans: [0.5], peakRssBytes: 123_456, peakGflops: 80.5, timeline: [9, 8, 7])
        t.skippedSteps = 2
        t.residentAtEnd = 99
        let back = try JSONDecoder().decode(RankTimings.self, from: JSONEncoder().encode(t))
        XCTAssertEqual(back, t)
    }
}
