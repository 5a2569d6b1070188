import Foundation

/// The two objectives: softmax cross-entropy with integer labels, averaged
/// over the batch (training), and the notebook's `tf.nn.l2_loss(fc8)`,
/// sum(z²)/2 over the batch (the forward-backward benchmark).
public enum Objective: String, Codable, Sendable {
    case crossEntropy = "cross-entropy"
    case l2 = "l2"

    /// Returns the loss and writes dLoss/dlogits into `grad`.
    public func lossAndGradient(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
                                batch: Int, classes: Int, grad: UnsafeMutablePointer<Float>) -> Double {
        switch self {
        case .l2:
            var sum = 0.0
            for i in 0..<(batch * classes) {
                let z = logits[i]
                sum += Double(z) * Double(z)
                grad[i] = z
            }
            return sum / 2
        case .crossEntropy:
            var total = 0.0
            let inv = 1 / Float(batch)
            for r in 0..<batch {
                let z = logits + r * classes, g = grad + r * classes
                var zmax = z[0]
                for j in 1..<max(classes, 1) { zmax = max(zmax, z[j]) }
                var sum: Float = 0
                for j in 0..<classes {
                    let e = expf(z[j] - zmax)
                    g[j] = e
                    sum += e
                }
                let label = Int(labels[r])
                total += Double(logf(sum) + zmax - z[label])
                let scale = inv / sum
                for j in 0..<classes { g[j] *= scale }
                g[label] -= inv
            }
            return total / Double(batch)
        }
    }
}
