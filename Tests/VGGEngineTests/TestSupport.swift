import Foundation
import Vocabulary
import XCTest
@testable import VGGEngine

// Shared helpers for the engine tests. Everything random here is a pure
// function of a fixed key (CounterRandom), never of the clock, so every run
// computes the same numbers.

/// Fills `count` floats with `scale` · uniform[-1, 1) drawn from `key`.
func fillUniform(_ p: UnsafeMutablePointer<Float>, count: Int, key: UInt64, scale: Float) {
    for i in 0..<count { p[i] = scale * CounterRandom.symmetric(key, i) }
}

/// `k` distinct indices in 0..<n (all of them when n <= k), chosen by `key`.
func sampleIndices(_ n: Int, _ k: Int, key: UInt64) -> [Int] {
    if n <= k { return Array(0..<n) }
    var chosen = Set<Int>()
    var out: [Int] = []
    var j = 0
    while out.count < k {
        let i = Int(CounterRandom.bits(key, j) % UInt64(n))
        j += 1
        if chosen.insert(i).inserted { out.append(i) }
    }
    return out.sorted()
}

/// The outcome of comparing finite-difference and analytic gradients.
struct GradientComparison: CustomStringConvertible {
    var numeric: [Double] = []
    var analytic: [Double] = []
    /// Perturbations that moved some ReLU or max-pool choice to another
    /// branch; these entries are excluded when `skipped` is used.
    var skipped = 0

    mutating func add(numeric n: Double, analytic a: Double) {
        numeric.append(n)
        analytic.append(a)
    }

    /// ||g_num − g_ana|| / (||g_num|| + ||g_ana||), 0 when both are 0.
    var relativeError: Double {
        var diff = 0.0, nn = 0.0, na = 0.0
        for (n, a) in zip(numeric, analytic) {
            diff += (n - a) * (n - a)
            nn += n * n
            na += a * a
        }
        let denominator = nn.squareRoot() + na.squareRoot()
        return denominator == 0 ? 0 : diff.squareRoot() / denominator
    }

    var maxAbsError: Double { zip(numeric, analytic).map { abs($0 - $1) }.max() ?? 0 }
    var gradientNorm: Double { analytic.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    var description: String {
        let rel = String(format: "%.3e", relativeError)
        let mx = String(format: "%.3e", maxAbsError)
        let gn = String(format: "%.3e", gradientNorm)
        return "checked \(numeric.count), skipped \(skipped), rel err \(rel), max abs err \(mx), |g| \(gn)"
    }
}

/// Central difference of `f` with respect to `x[i]`. The step actually taken
/// is what float rounding makes of ±eps, so the quotient divides by the true
/// distance between the two points. Returns the derivative and whether
/// `signature` (the piecewise-linear branch pattern) at x−h and x+h equals
/// `base`, the pattern at x (always true when `base` is nil).
func centralDifference(_ x: UnsafeMutablePointer<Float>, _ i: Int, eps: Float, base: [UInt8]? = nil,
                       signature: () -> [UInt8] = { [] }, f: () -> Double) -> (Double, Bool) {
    let x0 = x[i]
    let xp = x0 + eps, xm = x0 - eps
    x[i] = xp
    let fp = f()
    let samePlus = base.map { signature() == $0 } ?? true
    x[i] = xm
    let fm = f()
    let sameMinus = base.map { signature() == $0 } ?? true
    x[i] = x0
    return ((fp - fm) / (Double(xp) - Double(xm)), samePlus && sameMinus)
}

/// One layer with buffers it owns, the tests' one layer fixture: a
/// convolution runs the algorithm asked for (im2col by default) on a
/// workspace of its own. Input, weights, bias and dL/dy (`dy`) are drawn from
/// `key`, so two harnesses built with the same key and shape see the same
/// tensors whatever their algorithm or budget. The scalar objective is
/// L = Σ dy·y, so that dL/dy = dy.
final class LayerHarness {
    let layer: Layer
    let spec: LayerSpec
    let batch: Int
    let input: FloatArena, output: FloatArena
    let inputGrad: FloatArena, outputGrad: FloatArena
    let parameters: FloatArena, gradients: FloatArena
    /// The convolution's workspace (nil for other layers).
    let workspace: ConvWorkspace?
    let dy: [Float]
    var context: StepContext

    var inputCount: Int { batch * spec.inputElementsPerImage }
    var outputCount: Int { batch * spec.outputElementsPerImage }
    /// The layer, when it is a convolution.
    var conv: Conv2D { layer as! Conv2D }

    /// - weightScale: weights are weightScale · uniform[-1, 1); nil: the
    ///   Glorot-like √(3 / 9C) of a convolution with C input channels, so
    ///   that its outputs are O(1) whatever C is.
    /// - withInputGrad: false builds the layer without an input gradient (a
    ///   network's first layer).
    init(spec: LayerSpec, batch: Int, key: UInt64, algorithm: ConvAlgorithm = .im2col,
         inputScale: Float = 1, weightScale: Float? = 0.5, biasScale: Float = 0.1,
         workspaceBudget: Int = 1 << 20, keepProbability: Float = 0.5, withInputGrad: Bool = true,
         context: StepContext = StepContext(step: 3, firstSample: 5, globalBatch: 64, training: true)) {
        self.spec = spec
        self.batch = batch
        self.context = context
        input = FloatArena(count: batch * spec.inputElementsPerImage)
        output = FloatArena(count: batch * spec.outputElementsPerImage)
        inputGrad = FloatArena(count: batch * spec.inputElementsPerImage)
        outputGrad = FloatArena(count: batch * spec.outputElementsPerImage)
        parameters = FloatArena(count: spec.parameterCount)
        gradients = FloatArena(count: spec.parameterCount)

        let scale: Float
        if let weightScale {
            scale = weightScale
        } else {
            guard case let .conv(_, c, _, _, _) = spec else { preconditionFailure("Glorot scale needs a conv spec") }
            scale = Float(3 / Double(9 * c)).squareRoot()
        }
        fillUniform(input.base, count: input.count, key: CounterRandom.key(key, 1), scale: inputScale)
        fillUniform(parameters.base, count: spec.weightCount, key: CounterRandom.key(key, 2), scale: scale)
        fillUniform(parameters.base + spec.weightCount, count: spec.biasCount, key: CounterRandom.key(key, 3), scale: biasScale)
        let dyKey = CounterRandom.key(key, 4)
        dy = (0..<(batch * spec.outputElementsPerImage)).map { CounterRandom.symmetric(dyKey, $0) }

        let io = LayerBuffers(input: input.base, output: output.base,
                              inputGrad: withInputGrad ? inputGrad.base : nil, outputGrad: outputGrad.base)
        let p = LayerParameters(weights: parameters.base, bias: parameters.base + spec.weightCount,
                                weightGrad: gradients.base, biasGrad: gradients.base + spec.weightCount)
        let slice = ArenaSlice(offset: 0, count: spec.parameterCount)
        switch spec {
        case .conv:
            let ws = ConvWorkspace(specs: [spec], batch: batch, budget: workspaceBudget, algorithm: algorithm)
            workspace = ws
            layer = Conv2D(spec: spec, parameterSlice: slice, io: io, parameters: p,
                           workspace: ws, algorithm: algorithm, batch: batch)
        case .maxPool:
            workspace = nil
            layer = MaxPool2D(spec: spec, io: io, batch: batch)
        case .linear:
            workspace = nil
            layer = Linear(spec: spec, parameterSlice: slice, io: io, parameters: p)
        case .dropout:
            workspace = nil
            layer = Dropout(spec: spec, layerIndex: 7, keepProbability: keepProbability, seed: key, io: io, batch: batch)
        }
    }

    /// Forward, after poisoning the output: every output must be written.
    func forward() {
        for i in 0..<output.count { output[i] = .nan }
        layer.forward(batch: batch, context: context)
    }

    /// L = Σ dy·y, accumulated in Double.
    func objective() -> Double {
        forward()
        var s = 0.0
        for i in 0..<outputCount { s += Double(dy[i]) * Double(output[i]) }
        return s
    }

    /// Backward with dL/dy = `dy` after the last forward; gradients land in
    /// `gradients` and `inputGrad`. With `reference`, its forward output is
    /// taken first (only ReLU's mask depends on it), so that a pre-activation
    /// within rounding of 0 cannot flip the mask in one run and not the other.
    func backward(outputFrom reference: LayerHarness? = nil) {
        if let reference { output.copy(from: reference.output) }
        for i in 0..<outputCount { outputGrad[i] = dy[i] }
        // Poison the outputs so that stale values cannot pass for results.
        for i in 0..<gradients.count { gradients[i] = .nan }
        for i in 0..<inputGrad.count { inputGrad[i] = .nan }
        layer.backward(batch: batch, context: context)
    }

    /// Forward, then backward.
    func analytic() {
        forward()
        backward()
    }

    /// Which branch every ReLU and max-pool window took in the last forward.
    func signature() -> [UInt8] {
        switch layer {
        case let pool as MaxPool2D:
            return Array(UnsafeBufferPointer(start: pool.argmax, count: outputCount))
        case is Conv2D:
            return (0..<outputCount).map { output[$0] > 0 ? 1 : 0 }
        case let l as Linear where l.relu:
            return (0..<outputCount).map { output[$0] > 0 ? 1 : 0 }
        default:
            return []
        }
    }

    /// Finite differences against `analytic()` for every parameter and every
    /// input element; perturbations that change a branch are skipped (within
    /// one branch these layers are linear in the perturbed value, so central
    /// differences are exact up to float rounding).
    func check(eps: Float) -> (parameters: GradientComparison, inputs: GradientComparison) {
        analytic()
        let base = signature()
        let gParam = (0..<gradients.count).map { Double(gradients[$0]) }
        let gInput = (0..<inputGrad.count).map { Double(inputGrad[$0]) }
        var cp = GradientComparison(), ci = GradientComparison()
        for i in 0..<parameters.count {
            let (n, same) = centralDifference(parameters.base, i, eps: eps, base: base, signature: signature, f: objective)
            if same { cp.add(numeric: n, analytic: gParam[i]) } else { cp.skipped += 1 }
        }
        for i in 0..<input.count {
            let (n, same) = centralDifference(input.base, i, eps: eps, base: base, signature: signature, f: objective)
            if same { ci.add(numeric: n, analytic: gInput[i]) } else { ci.skipped += 1 }
        }
        return (cp, ci)
    }
}

/// Which branch every ReLU (conv, and linear with ReLU) and every max-pool
/// window of `net` took in its last forward, packed into words. A
/// convolution that feeds a max-pool is seen through the pool (the argmax and
/// the sign of the pool's output): in a training network its own output is
/// overwritten after the pool's forward.
func branchPattern(_ net: Network) -> [UInt64] {
    var words: [UInt64] = []
    var word: UInt64 = 0, bits = 0
    func push(_ v: UInt64, _ width: Int) {
        if bits + width > 64 { words.append(word); word = 0; bits = 0 }
        word |= v << UInt64(bits)
        bits += width
        if bits == 64 { words.append(word); word = 0; bits = 0 }
    }
    for (i, layer) in net.layers.enumerated() {
        let n = net.batch * layer.spec.outputElementsPerImage
        if let pool = layer as? MaxPool2D {
            let y = net.activations[i]
            for e in 0..<n { push(UInt64(pool.argmax[e]), 2); push(y[e] > 0 ? 1 : 0, 1) }
        } else if let conv = layer as? Conv2D, conv.reluAppliedByPool {
            continue
        } else if layer is Conv2D || (layer as? Linear)?.relu == true {
            let y = net.activations[i]
            for e in 0..<n { push(y[e] > 0 ? 1 : 0, 1) }
        }
    }
    words.append(word)
    return words
}

/// A tiny VGG-11 for tests: 32×32 images, widths /16 (4…32 channels, 256
/// hidden), 10 classes. About 113 k parameters.
let tinySpec = NetworkSpec(model: .vgg11, imageSize: 32, classes: 10, widthDivisor: 16)

/// One SGD step by hand on `net`, with samples of step `t` from `data`;
/// returns the cross-entropy loss before the update.
@discardableResult
func trainStep(_ net: Network, data: SyntheticData, step t: Int, optimizer: SGD, velocity: FloatArena,
               firstSample: Int = 0, globalBatch: Int? = nil) -> Double {
    let gb = globalBatch ?? net.batch
    data.fill(images: net.images, labels: net.labels, step: t, first: firstSample, count: net.batch, globalBatch: gb)
    let ctx = StepContext(step: t, firstSample: firstSample, globalBatch: gb, training: true)
    net.forward(context: ctx)
    let l = net.loss(.crossEntropy)
    net.backward(context: ctx)
    optimizer.step(parameters: net.parameters, gradients: net.gradients, velocity: velocity,
                   slice: ArenaSlice(offset: 0, count: net.parameters.count), gradientScale: 1)
    return l
}
