import ArgumentParser
import Foundation
import VGGEngine
import Vocabulary

// Before MPI starts: a better OpenBLAS kernel when OpenBLAS fell back to an
// old one on a CPU it does not know (see BLASKernel), checked once chosen.
BLASKernel.reexecIfOutdated()
BLASKernel.verifyChosenKernel()

// Every rank parses the same command line: an error is printed once, by the
// rank that mpirun calls 0, and every rank exits with the same status.
do {
    var command = try VGGDP.parseAsRoot()
    try command.run()
} catch {
    Exit.fail(error)
}
