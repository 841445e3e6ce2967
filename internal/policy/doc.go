// Package policy evaluates IAM-style access policies: JSON statements that
// allow or deny actions (aps:RemoteWrite, aps:Query*, …) on resources
// (workspace ARNs, wildcards), where an explicit deny always wins and
// anything not allowed is denied.
package policy
