package policy

// Role is what a person may do (design section 1). Roles are disjoint: the
// separation of duties (分确三权) rests on no person holding two — an
// analyst never reviews, a reviewer never submits, an admin never approves.
type Role string

const (
	RoleAnalyst   Role = "analyst"
	RoleReviewer  Role = "reviewer"
	RoleAuditor   Role = "auditor"
	RoleAdmin     Role = "admin"
	RoleDataOwner Role = "data_owner"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleAnalyst, RoleReviewer, RoleAuditor, RoleAdmin, RoleDataOwner:
		return true
	}
	return false
}

// User is a person known to the coordinator. Only the SHA-256 of the bearer
// token is kept. PublicKey is an analyst's HPKE key that psi_members results
// are sealed to (from `unseen keygen`). SigningKey is a reviewer's or a data
// owner's Ed25519 public key ("ed25519:…", from `unseen keygen --sign`):
// their approvals and consents are statements signed with its private half
// (policy/attest), which the API checks here and the nodes check again
// against their own copies — the coordinator's word that a person agreed
// is worth nothing without it.
type User struct {
	Name        string `json:"name" yaml:"name"`
	Role        Role   `json:"role" yaml:"role"`
	Department  string `json:"department" yaml:"department"`
	TokenSHA256 string `json:"token_sha256" yaml:"token_sha256"`
	PublicKey   string `json:"public_key,omitempty" yaml:"public_key"` // base64
	SigningKey  string `json:"signing_key,omitempty" yaml:"signing_key"`
}

// Signs reports whether users of role r sign what they decide (and so may
// register a signing key): reviewers their approvals, data owners their
// consents.
func (r Role) Signs() bool { return r == RoleReviewer || r == RoleDataOwner }
