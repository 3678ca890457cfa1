package web

// gisRoutes lists the gis endpoints. The gis area is wired in this file.
func (s *Server) gisRoutes() []route { return nil }
