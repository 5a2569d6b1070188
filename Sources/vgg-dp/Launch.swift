import Foundation
import Trainer
import Vocabulary

/// Facts about how this process was launched, known before MPI starts.
enum Launch {
    /// The rank mpirun or Slurm gave this process; 0 when run alone.
    static let rank: Int = {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"] {
            if let v = env[key], let r = Int(v) { return r }
        }
        return 0
    }()

    /// 2 for usage errors (ours and the parser's), 1 for failures.
    static func exitStatus(for error: Error, parserCode: Int32) -> Int32 {
        if let e = error as? TrainerError { return e.exitCode }
        return parserCode == 64 ? 2 : (parserCode == 0 ? 0 : parserCode)
    }
}
