package policy

// Which private set intersection protocol a job runs (Spec.PSIProtocol).
//
//   - "ecdh": commutative blinding on X25519 (package psi). Every party's
//     list is blinded by every party along a rotation; the coordinator
//     joins the fully blinded lists. Any number of parties.
//   - "ot": the KKRT oblivious-PRF protocol on OT extension (package
//     psi/kkrt), between two nodes at a time, relayed by the coordinator
//     and encrypted end to end between the nodes. Several times faster;
//     with more than two parties a star around the smallest input.
//
// The coordinator learns the same thing from both for two parties: which
// positions of one list match which of the other. With more parties ECDH
// shows it the whole membership pattern of every element of every list
// (any two fully blinded lists can be joined), the OT star only each
// list's matches with the centre's (README, "Two PSI protocols").

import "fmt"

// PSI protocols.
const (
	PSIProtocolECDH = "ecdh"
	PSIProtocolOT   = "ot"
)

// AutoOTMinElements is the total length of the two lists from which the
// automatic rule picks OT: below it, the OT protocol's fixed cost (128
// public-key base OTs, the signed key exchange and about five more round
// trips through the coordinator) is not paid back by its cheaper
// per-element work. BenchmarkPSIProtocol (coordinator/worker) puts the
// crossover near 1,000 elements in all on loopback (2^7 keys per side:
// ECDH faster; 2^9: OT faster); the threshold is four times that, for the
// round trips of a real network.
const AutoOTMinElements = 1 << 12

// OTMaxSetSize is the largest list the OT protocol takes (psi/kkrt's
// MaxSetSize: its code width and output length are chosen for it).
const OTMaxSetSize = 1 << 27

// hasPSI reports whether a job of type t runs a PSI phase.
func hasPSI(t JobType) bool {
	return t == PSICardinality || t == PSIMembers || t == IntersectionStats
}

func (s *Spec) validateProtocol() error {
	switch s.PSIProtocol {
	case "":
		return nil
	case PSIProtocolECDH, PSIProtocolOT:
		if !hasPSI(s.Type) {
			return specErr("psi_protocol: %s jobs have no PSI phase", s.Type)
		}
		return nil
	default:
		return specErr("psi_protocol %q is not %q or %q", s.PSIProtocol, PSIProtocolECDH, PSIProtocolOT)
	}
}

// ChoosePSIProtocol is the protocol a job runs, given the lengths of its
// parties' filtered lists (in input order), which the coordinator learns
// from the nodes' signed declarations at prepare time and which every node
// can check the same way:
//
//   - the spec's PSIProtocol if it names one;
//   - otherwise "ot" for a two-party job whose two lists hold at least
//     AutoOTMinElements between them (and each at most OTMaxSetSize);
//   - otherwise "ecdh": small jobs, where ECDH is as fast, and jobs of
//     three or more parties, where the OT star would change what the
//     coordinator learns (the README compares the two), which is the
//     analyst's choice to make, in the spec, not the coordinator's.
func ChoosePSIProtocol(s *Spec, lengths []int) (string, error) {
	if !hasPSI(s.Type) {
		return "", fmt.Errorf("policy: %s jobs have no PSI phase", s.Type)
	}
	if len(lengths) != len(s.Inputs) {
		return "", fmt.Errorf("policy: %d list lengths for %d inputs", len(lengths), len(s.Inputs))
	}
	if s.PSIProtocol != "" {
		return s.PSIProtocol, nil
	}
	if len(lengths) == 2 && lengths[0]+lengths[1] >= AutoOTMinElements && max(lengths[0], lengths[1]) <= OTMaxSetSize {
		return PSIProtocolOT, nil
	}
	return PSIProtocolECDH, nil
}
