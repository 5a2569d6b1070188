import ArgumentParser
import Comm
import Foundation
import Trainer
import VGGEngine
import Vocabulary

/// The one place that turns an error into what the user sees and the exit
/// status: 2 for bad input (ours and the argument parser's), 1 for a
/// failure during the run, 0 for --help and --version.
enum Exit {
    static func status(for error: Error) -> Int32 {
        switch error {
        case let e as TrainerError: return e.exitCode
        case is EngineError: return 2
        case is CommError: return 1
        default:
            let code = VGGDP.exitCode(for: error).rawValue
            return code == 64 ? 2 : code
        }
    }

    static func message(for error: Error) -> String {
        switch error {
        case let e as TrainerError: return "vgg-dp: error: \(e.description)"
        case let e as EngineError: return "vgg-dp: error: \(e.description)"
        case let e as CommError: return "vgg-dp: error: \(e.description)"
        default: return VGGDP.fullMessage(for: error)
        }
    }

    /// Prints `error` where `printHere` (by default on the rank that mpirun
    /// calls 0): help on stdout, errors on stderr.
    static func say(_ error: Error, printHere: Bool = Launch.rank == 0) {
        guard printHere else { return }
        if status(for: error) == 0 {
            print(message(for: error))
        } else {
            FileHandle.standardError.write(Data((message(for: error) + "\n").utf8))
        }
    }

    /// Prints `error` once and ends the process with its status.
    static func fail(_ error: Error, printHere: Bool = Launch.rank == 0) -> Never {
        say(error, printHere: printHere)
        exit(status(for: error))
    }
}
