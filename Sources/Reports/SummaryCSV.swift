import Foundation

/// One summary row per run, appended to `--csv FILE` for studies.
extension RunReport {
    public static let csvHeader = [
        "started_at", "model", "image_size", "classes", "width_divisor", "mode", "ranks", "hosts", "batch_per_rank",
        "global_batch", "blas_threads", "blas_core", "overlap", "comm_wait", "bucket_mb", "warmup", "steps",
        "step_mean_s", "step_sd_s", "step_median_s", "step_p95_s", "images_per_second", "gflops_per_second",
        "gflops_per_second_per_rank", "peak_gflops_per_rank", "allreduce_s_per_step", "exposed_s_per_step",
        "straggler_ratio", "peak_rss_bytes", "parameter_checksum", "complete",
    ].joined(separator: ",")

    public var csvRow: String {
        let fields: [String] = [
            startedAt, model, "\(imageSize)", "\(classes)", "\(widthDivisor)", mode, "\(ranks)", "\(Set(hosts).count)",
            "\(batchPerRank)", "\(globalBatch)", "\(blasThreads)", blasCore, "\(overlap)", commWait ?? "", "\(bucketMb)",
            "\(warmup)", "\(steps)", "\(stepSeconds.mean)", "\(stepSeconds.sd)", "\(stepSeconds.median)", "\(stepSeconds.p95)",
            "\(imagesPerSecond)", "\(gflopsPerSecond)", "\(gflopsPerSecondPerRank)", peakGflopsPerRank.map { "\($0)" } ?? "",
            "\(allreduceSecondsPerStep)", "\(exposedSecondsPerStep)", "\(stragglerRatio)", "\(peakRssBytes)",
            parameterChecksum, "\(complete)",
        ]
        return fields.map { f in
            f.contains(",") || f.contains("\"") ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",")
    }

    /// Appends the row, writing the header first if the file is new or empty.
    public func appendCSV(to path: String) throws {
        let fm = FileManager.default
        let isNew = !fm.fileExists(atPath: path) || ((try? fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) == 0
        let text = (isNew ? RunReport.csvHeader + "\n" : "") + csvRow + "\n"
        if isNew { _ = fm.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw TrainerError.failed("cannot append to \(path)")
        }
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
    }
}
