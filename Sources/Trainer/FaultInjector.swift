import Foundation
import VGGEngine

/// Injects `--inject-fault KIND:RANK:STEP` on its rank and step, to test
/// that the job fails fast and names what failed.
struct FaultInjector {
    let fault: Fault?
    let rank: Int

    /// Before step `step`: a kill or a stall happens here.
    func beforeStep(_ step: Int) {
        guard let f = fault, f.step == step, f.rank == rank else { return }
        switch f.kind {
        case .kill:
            FileHandle.standardError.write(Data("vgg-dp: injected fault: rank \(rank) kills itself at step \(step)\n".utf8))
            kill(getpid(), SIGKILL)
        case .stall:
            FileHandle.standardError.write(Data("vgg-dp: injected fault: rank \(rank) stalls at step \(step)\n".utf8))
            while true { sleep(60) }
        case .nan:
            break // `poison`, during backward
        }
    }

    /// During backward of step `step`: a NaN goes into this rank's first
    /// gradient of the last layer, before any exchange sees it.
    func poison(step: Int, layer: Int, network: Network) {
        guard let f = fault, f.kind == .nan, f.step == step, f.rank == rank, layer == network.layers.count - 1 else { return }
        network.gradients[network.layers[layer].parameterSlice.offset] = .nan
    }
}
