import Reports
import Vocabulary

/// Run reports for tests, built from the few numbers a test is about; every
/// other field has a plausible default. The step summary is two steps at
/// step ± sd (so its mean and median are `step`, its population sd `sd`);
/// images/s = global batch / step; GFLOP/s from `stepFlops`.
public enum ReportFixture {
    /// Mean seconds per step of each phase on one rank.
    public struct Phases {
        public var data, forward, backward, optimizer, allreduce, exposed: Double
        public init(data: Double = 0, forward: Double = 0, backward: Double = 0, optimizer: Double = 0,
                    allreduce: Double = 0, exposed: Double = 0) {
            self.data = data; self.forward = forward; self.backward = backward
            self.optimizer = optimizer; self.allreduce = allreduce; self.exposed = exposed
        }
    }

    public static func make(tool: String = "vgg-dp", model: VGGModel = .vgg11, imageSize: Int = 32, classes: Int = 10,
                            widthDivisor: Int = 16, mode: Mode = .train, objective: String? = "cross-entropy",
                            ranks: Int = 1, batchPerRank: Int = 8, step: Double = 1, sd: Double = 0,
                            phases: [Phases]? = nil, hosts: [String]? = nil, threads: Int = 1,
                            started: String = "2026-01-01T00:00:00Z", command: [String]? = nil,
                            warmup: Int = 2, steps: Int = 20, parameters: Int = 113_090,
                            forwardFlops: Int = 1_000_000, stepFlops: Int = 3_000_000,
                            blasCore: String = "Haswell", blasConfig: String = "OpenBLAS 0.3.21",
                            openblasCoretype: String? = nil, mpiLibrary: String = "Open MPI v4.1.4",
                            mpiThreadLevel: String = "MPI_THREAD_MULTIPLE", overlap: Bool = true, bucketMb: Double = 25,
                            allreduce: Double = 0, exposed: Double = 0, straggler: Double = 1,
                            peakRssBytes: Int = 1 << 20, checksum: String = "0") -> RunReport {
        let hostList = hosts ?? Array(repeating: "box", count: ranks)
        let summary = Summary([step - sd, step + sd])
        let perRank = (phases ?? Array(repeating: Phases(), count: ranks)).enumerated().map { i, p in
            RunReport.Rank(rank: i, host: hostList[i % hostList.count], stepSeconds: summary,
                           data: p.data, forward: p.forward, backward: p.backward, optimizer: p.optimizer,
                           allreduce: p.allreduce, exposed: p.exposed, peakRssBytes: peakRssBytes, steps: [])
        }
        let global = ranks * batchPerRank
        let imagesPerSecond = Double(global) / step
        let gflops = imagesPerSecond * Double(stepFlops) / 1e9
        return RunReport(
            tool: tool, startedAt: started, command: command ?? [tool, "--global-batch", "\(global)"],
            model: model, imageSize: imageSize, classes: classes, widthDivisor: widthDivisor, mode: mode, objective: objective,
            ranks: ranks, batchPerRank: batchPerRank, globalBatch: global, warmup: warmup, steps: steps, seed: 42,
            parameters: parameters, forwardFlopsPerImage: forwardFlops, stepFlopsPerImage: stepFlops,
            hosts: hostList, blasThreads: threads, blasCore: blasCore, blasConfig: blasConfig,
            openblasCoretype: openblasCoretype, mpiLibrary: mpiLibrary, mpiThreadLevel: mpiThreadLevel,
            overlap: overlap, commWait: nil, bucketMb: bucketMb, buckets: [],
            stepSeconds: summary, imagesPerSecond: imagesPerSecond,
            gflopsPerSecond: gflops, gflopsPerSecondPerRank: gflops / Double(ranks), stragglerRatio: straggler,
            allreduceSecondsPerStep: allreduce, exposedSecondsPerStep: exposed,
            lossPerStep: [], parameterChecksum: checksum, peakRssBytes: peakRssBytes, perRank: perRank, layers: [])
    }

    /// A report as scripts/baselines/common.py writes it (make_report), by
    /// hand: TensorFlow, forward-backward, batch 16, 2 threads, steps 0.5,
    /// 0.7, 0.6 s, 3 GiB.
    public static let baselineJSON = """
    {"allreduce_seconds_per_step": 0.0, "batch_per_rank": 16, "blas_config": "TensorFlow 2.21.0; oneDNN on",
     "blas_core": "oneDNN v3.7.3 brg_conv_fwd:avx512_core", "blas_threads": 2, "bucket_mb": 0, "buckets": [],
     "classes": 1000, "comm_wait": "none", "command": ["scripts/baselines/tf_vgg16.py", "--mode", "forward-backward"],
     "complete": true, "exposed_seconds_per_step": 0.0, "forward_flops_per_image": 30940528640,
     "gflops_per_second": 2470.61807104, "gflops_per_second_per_rank": 2470.61807104, "global_batch": 16,
     "hosts": ["box"], "image_size": 224, "images_per_second": 26.666666666666668, "layers": [], "loss_per_step": [],
     "mode": "forward-backward", "model": "vgg16", "mpi_library": "none", "mpi_thread_level": "none",
     "objective": "l2_loss(fc8)", "openblas_coretype": null, "overlap": false, "parameter_checksum": "",
     "parameters": 138357544, "peak_rss_bytes": 3221225472,
     "per_rank": [{"allreduce": 0.0, "backward": 0.0, "data": 0.0, "exposed": 0.0, "forward": 0.0, "host": "box",
                   "optimizer": 0.0, "peak_rss_bytes": 3221225472, "rank": 0,
                   "step_seconds": {"count": 3, "max": 0.7, "mean": 0.6, "median": 0.6, "min": 0.5, "p95": 0.69, "sd": 0.08164965809277258},
                   "steps": [{"allreduce": 0.0, "backward": 0.0, "data": 0.0, "exposed": 0.0, "forward": 0.0, "loss": 0.0, "optimizer": 0.0, "wall": 0.5},
                             {"allreduce": 0.0, "backward": 0.0, "data": 0.0, "exposed": 0.0, "forward": 0.0, "loss": 0.0, "optimizer": 0.0, "wall": 0.7},
                             {"allreduce": 0.0, "backward": 0.0, "data": 0.0, "exposed": 0.0, "forward": 0.0, "loss": 0.0, "optimizer": 0.0, "wall": 0.6}]}],
     "ranks": 1, "schema": 1, "seed": 42, "started_at": "2026-01-02T03:04:05Z",
     "step_flops_per_image": 92648177664,
     "step_seconds": {"count": 3, "max": 0.7, "mean": 0.6, "median": 0.6, "min": 0.5, "p95": 0.69, "sd": 0.08164965809277258},
     "steps": 3, "straggler_ratio": 1.0, "tool": "tensorflow", "warmup": 1, "width_divisor": 1}
    """
}
