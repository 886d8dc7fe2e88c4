package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Role and User are the people directory's types, declared in policy so that
// the coordinator can read its configuration without importing the API.
type (
	Role = policy.Role
	User = policy.User
)

const (
	RoleAnalyst   = policy.RoleAnalyst
	RoleReviewer  = policy.RoleReviewer
	RoleAuditor   = policy.RoleAuditor
	RoleAdmin     = policy.RoleAdmin
	RoleDataOwner = policy.RoleDataOwner
)

type principal struct {
	user *User
	sum  [32]byte
}

// users authenticates bearer tokens against stored hashes in constant time,
// and holds the people's signing keys (reviewers, data owners).
type users struct {
	all    []principal
	byName map[string]*User
	keys   attest.Keyring // signing keys by user name
}

func newUsers(list []User) (*users, error) {
	u := &users{byName: map[string]*User{}, keys: attest.Keyring{}}
	for i := range list {
		usr := list[i]
		if usr.Name == "" || !usr.Role.Valid() {
			return nil, fmt.Errorf("api: user %q has an unknown role %q", usr.Name, usr.Role)
		}
		if _, dup := u.byName[usr.Name]; dup {
			return nil, fmt.Errorf("api: user %q declared twice", usr.Name)
		}
		h, err := hex.DecodeString(usr.TokenSHA256)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("api: user %q: token_sha256 must be 64 hex characters", usr.Name)
		}
		if usr.SigningKey != "" {
			if !usr.Role.Signs() {
				return nil, fmt.Errorf("api: user %q: signing_key is for reviewers and data owners, not role %s", usr.Name, usr.Role)
			}
			pub, err := attest.ParsePublicKey(usr.SigningKey)
			if err != nil {
				return nil, fmt.Errorf("api: user %q: signing_key: %w", usr.Name, err)
			}
			u.keys[usr.Name] = pub
		}
		p := principal{user: &usr}
		copy(p.sum[:], h)
		u.all = append(u.all, p)
		u.byName[usr.Name] = &usr
	}
	return u, nil
}

// lookup compares against every user so the time taken does not tell which
// (if any) matched.
func (u *users) lookup(token string) *User {
	sum := sha256.Sum256([]byte(token))
	var found *User
	for i := range u.all {
		if subtle.ConstantTimeCompare(sum[:], u.all[i].sum[:]) == 1 {
			found = u.all[i].user
		}
	}
	return found
}

// HashToken returns the hex SHA-256 of a token, as stored in configs.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

const ctxUser = "unseen.user"

func (a *API) authenticate(c *gin.Context) {
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || tok == "" {
		// A 401 must say how to authenticate (RFC 9110 section 15.5.2).
		c.Header("WWW-Authenticate", `Bearer realm="unseen"`)
		abort(c, errf(401, "unauthenticated", "an Authorization: Bearer token is required"))
		return
	}
	u := a.users.lookup(tok)
	if u == nil {
		c.Header("WWW-Authenticate", `Bearer realm="unseen", error="invalid_token"`)
		abort(c, errf(401, "unauthenticated", "unknown token"))
		return
	}
	c.Set(ctxUser, u)
	c.Next()
}

func currentUser(c *gin.Context) *User {
	v, _ := c.Get(ctxUser)
	u, _ := v.(*User)
	return u
}

// allow lets only the given roles through (deny by default).
func allow(roles ...Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		u := currentUser(c)
		for _, r := range roles {
			if u != nil && u.Role == r {
				c.Next()
				return
			}
		}
		abort(c, errf(403, "forbidden", "role %s may not do this", u.Role))
	}
}
