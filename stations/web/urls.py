from django.urls import path

from stations.web import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sites/", views.sites, name="sites"),
    path("sites/<int:pk>/", views.site_detail, name="site"),
    # Station ids may hold * : + | @ = (OCPP identifierString) but never a slash.
    path("stations/<str:station_id>/", views.station_detail, name="station"),
    path("stations/<str:station_id>/actions/<slug:action>/", views.station_action,
         name="station-action"),
    path("sessions/", views.sessions, name="sessions"),
    path("sessions/<int:pk>/", views.session_detail, name="session"),
    path("pending/", views.pending, name="pending"),
    path("pending/<str:station_id>/<slug:decision>/", views.pending_decide,
         name="pending-decide"),
]
