// Package anomaly detects anomalies in a stream of values with a Robust
// Random Cut Forest (Guha, Mishra, Roy and Schrijvers, ICML 2016), the
// algorithm behind AMP's anomaly detectors, and runs a workspace's detectors.
package anomaly
