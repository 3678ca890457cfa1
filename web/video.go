package web

// videoRoutes lists the video endpoints. The video area is wired in this file.
func (s *Server) videoRoutes() []route { return nil }
