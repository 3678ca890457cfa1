package web

// intakeRoutes lists the intake endpoints. The intake area is wired in this file.
func (s *Server) intakeRoutes() []route { return nil }
