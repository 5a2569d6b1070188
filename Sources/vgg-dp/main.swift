import ArgumentParser
import Foundation
import Trainer
import VGGEngine
import Vocabulary

// Before MPI starts: a better OpenBLAS kernel when OpenBLAS fell back to an
// old one on a CPU it does not know (see BLASKernel), checked once chosen.
BLASKernel.reexecIfOutdated()
BLASKernel.verifyChosenKernel()

// Every rank parses the same command line. Usage errors are printed once, by
// the rank that mpirun calls 0, and every rank exits with status 2.
do {
    var command = try VGGDP.parseAsRoot()
    try command.run()
} catch {
    let code = VGGDP.exitCode(for: error)
    if code == .success {
        if Launch.rank == 0 { print(VGGDP.fullMessage(for: error)) }
        exit(0)
    }
    if Launch.rank == 0 {
        let message = (error as? TrainerError).map { "error: \($0.description)" } ?? VGGDP.fullMessage(for: error)
        FileHandle.standardError.write(Data(("vgg-dp: " + message + "\n").utf8))
    }
    exit(Launch.exitStatus(for: error, parserCode: code.rawValue))
}
