import Foundation
import Vocabulary

/// Human-readable renderings of a run, printed by rank 0.
public enum Text {
    /// "2026-11-29 08:01:02.345678", as Python's datetime.now() prints.
    public static func timestamp(_ date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
        return f.string(from: date)
    }

    public static func fixed(_ x: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }

    public static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    /// "1h02m", "3m07s", "12.3s".
    public static func duration(_ seconds: Double) -> String {
        let s = max(0, seconds)
        if s < 60 { return fixed(s, 1) + "s" }
        let total = Int(s.rounded())
        if total < 3600 { return "\(total / 60)m" + String(format: "%02ds", total % 60) }
        return "\(total / 3600)h" + String(format: "%02dm", (total % 3600) / 60)
    }

    /// The notebook's progress line.
    public static func progress(step: Int, seconds: Double) -> String {
        "\(timestamp()): step \(step), duration = \(fixed(seconds))"
    }

    static func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        let n = max(0, width - s.count)
        return left ? s + String(repeating: " ", count: n) : String(repeating: " ", count: n) + s
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { pad($0.element, widths[$0.offset], left: $0.offset == 0) }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

extension RunReport {
    /// The notebook's closing line, then throughput.
    public var closingLines: String {
        var s = "\(Text.timestamp()): \(mode.title) across \(steps) steps, \(Text.fixed(stepSeconds.mean)) +- \(Text.fixed(stepSeconds.sd)) sec / batch\n"
        s += "images/s: \(Text.fixed(imagesPerSecond, 2))  (global batch \(globalBatch) = \(ranks) rank(s) × \(batchPerRank); slowest rank's mean step)\n"
        s += "GFLOP/s:  \(Text.fixed(gflopsPerSecond, 1)) total, \(Text.fixed(gflopsPerSecondPerRank, 1)) per rank"
        s += "  (\(Text.grouped(stepFlopsPerImage)) FLOP per image, GEMM work counted from layer shapes)"
        if let peak = peakGflopsPerRank, let share = peakShare {
            s += "\nsgemm peak per rank: \(Text.fixed(peak, 1)) GFLOP/s (probe, same threads); this run: \(Text.fixed(100 * share, 1))% of it"
        }
        if let memory {
            s += "\n" + memory.summaryLine + "; peak RSS \(Text.fixed(Double(peakRssBytes) / 1_048_576, 0)) MiB"
        }
        return s
    }

    /// One row per rank: step-time statistics and the mean of each phase (ms).
    public var rankTable: String {
        func ms(_ x: Double) -> String { Text.fixed(x * 1000, 1) }
        // The compression compute column, only for a run that compressed.
        let compressed = perRank.contains { $0.compression != nil }
        let rows = perRank.map { r in
            [String(r.rank), r.host, ms(r.stepSeconds.mean), ms(r.stepSeconds.sd), ms(r.stepSeconds.min),
             ms(r.stepSeconds.median), ms(r.stepSeconds.p95), ms(r.stepSeconds.max),
             ms(r.data), ms(r.forward), ms(r.backward), ms(r.optimizer), ms(r.allreduce), ms(r.exposed)]
                + (compressed ? [ms(r.compression ?? 0)] : [])
                + [Text.fixed(Double(r.peakRssBytes) / 1_048_576, 0)]
        }
        return Text.table(["rank", "host", "mean_ms", "sd", "min", "median", "p95", "max",
                           "data", "fwd", "bwd", "opt", "allreduce", "exposed"] + (compressed ? ["compress"] : []) + ["rss_MiB"],
                          rows)
    }

    /// "compression: powersgd rank 4 min 65536: rank 0 sent 0.9 MiB per step, 527.8 MiB as fp32 (586×); compute 95.1 ms per step (4.8% of the step)".
    public var compressionLine: String? {
        guard let c = compression, let first = perRank.first, let sent = first.exchangeBytesPerStep,
              let fp32 = first.fp32BytesPerStep else { return nil }
        let mib = { (b: Int) in Text.fixed(Double(b) / 1_048_576, 2) }
        var s = "compression: \(c): rank 0 sent \(mib(sent)) MiB per step, \(mib(fp32)) MiB as fp32"
        if let ratio = compressionRatio { s += " (\(Text.fixed(ratio, 1))×)" }
        if let t = compressionSecondsPerStep {
            s += "; compute \(Text.fixed(t * 1000, 1)) ms per step"
            if stepSeconds.mean > 0 { s += " (\(Text.fixed(100 * t / stepSeconds.mean, 1))% of the step)" }
        }
        return s
    }

    /// One row per layer: mean times (ms), GFLOP/s, and the share outside sgemm.
    public var layerTable: String {
        func ms(_ x: Double) -> String { Text.fixed(x * 1000, 2) }
        func share(_ total: Double, _ gemm: Double) -> String {
            total > 0 ? Text.fixed(100 * max(0, total - gemm) / total, 1) : "-"
        }
        let stepTotal = layers.reduce(0) { $0 + $1.forwardSeconds + $1.backwardSeconds }
        func ofPeak(_ g: Double) -> String {
            guard let p = peakGflopsPerRank, p > 0, g > 0 else { return "-" }
            return Text.fixed(100 * g / p, 1)
        }
        let rows = layers.map { l in
            [l.name, ms(l.forwardSeconds), Text.fixed(l.forwardGflopsPerSecond, 1), ofPeak(l.forwardGflopsPerSecond),
             share(l.forwardSeconds, l.forwardGemmSeconds),
             ms(l.backwardSeconds), Text.fixed(l.backwardGflopsPerSecond, 1), ofPeak(l.backwardGflopsPerSecond),
             share(l.backwardSeconds, l.backwardGemmSeconds),
             stepTotal > 0 ? Text.fixed(100 * (l.forwardSeconds + l.backwardSeconds) / stepTotal, 1) : "-"]
        }
        return Text.table(["layer", "fwd_ms", "fwd_GFLOP/s", "fwd_%peak", "fwd_%nonGEMM",
                           "bwd_ms", "bwd_GFLOP/s", "bwd_%peak", "bwd_%nonGEMM", "%step"], rows)
    }

    /// Time outside sgemm over all layers, as a share of forward + backward.
    public var nonGemmShare: Double {
        let total = layers.reduce(0) { $0 + $1.forwardSeconds + $1.backwardSeconds }
        let gemm = layers.reduce(0) { $0 + $1.forwardGemmSeconds + $1.backwardGemmSeconds }
        return total > 0 ? (total - gemm) / total : 0
    }
}
