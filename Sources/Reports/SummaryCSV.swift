import Foundation
import Vocabulary

/// One summary row per run, appended to `--csv FILE` for studies.
extension RunReport {
    /// The columns of the summary CSV, in order.
    public static let csvColumns = [
        "started_at", "model", "image_size", "classes", "width_divisor", "mode", "ranks", "hosts", "batch_per_rank",
        "global_batch", "blas_threads", "blas_core", "overlap", "comm_wait", "bucket_mb", "warmup", "steps",
        "step_mean_s", "step_sd_s", "step_median_s", "step_p95_s", "images_per_second", "gflops_per_second",
        "gflops_per_second_per_rank", "peak_gflops_per_rank", "allreduce_s_per_step", "exposed_s_per_step",
        "straggler_ratio", "peak_rss_bytes", "parameter_checksum", "complete",
    ]

    /// The header line (without its line end).
    public static let csvHeader = CSV.line(csvColumns)

    /// This run's fields, in `csvColumns` order.
    public var csvFields: [String] {
        [
            startedAt, model.rawValue, "\(imageSize)", "\(classes)", "\(widthDivisor)", mode.rawValue, "\(ranks)",
            "\(Set(hosts).count)", "\(batchPerRank)", "\(globalBatch)", "\(blasThreads)", blasCore, "\(overlap)",
            commWait ?? "", "\(bucketMb)", "\(warmup)", "\(steps)", "\(stepSeconds.mean)", "\(stepSeconds.sd)",
            "\(stepSeconds.median)", "\(stepSeconds.p95)", "\(imagesPerSecond)", "\(gflopsPerSecond)",
            "\(gflopsPerSecondPerRank)", peakGflopsPerRank.map { "\($0)" } ?? "", "\(allreduceSecondsPerStep)",
            "\(exposedSecondsPerStep)", "\(stragglerRatio)", "\(peakRssBytes)", parameterChecksum, "\(complete)",
        ]
    }

    /// The row as written (without its line end).
    public var csvRow: String { CSV.line(csvFields) }

    /// Checks before any work that `appendCSV(to:)` can add a row to `path`
    /// (see `CSV.checkAppendable`): a usage error otherwise.
    public static func checkCSVAppendable(_ path: String) throws {
        try CSV.checkAppendable(path, header: csvColumns, flag: "--csv")
    }

    /// Appends the row, writing the header first if the file is new or
    /// empty; all or nothing (see `CSV.append`).
    public func appendCSV(to path: String) throws {
        try CSV.append(row: csvFields, header: RunReport.csvColumns, to: path, flag: "--csv")
    }
}
