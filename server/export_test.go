package server

import "github.com/durusbdb/durusbdb/commit"

// Token returns the server's commit token (tests check its sequence number,
// queue and revocations).
func (s *Server) Token() *commit.Token { return s.token }
