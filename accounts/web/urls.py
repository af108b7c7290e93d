from django.urls import path

from accounts.web import views

urlpatterns = [
    path("cards/", views.card_list, name="cards"),
    path("cards/new/", views.card_new, name="card-new"),
    path("cards/bulk/", views.card_bulk, name="cards-bulk"),
    path("cards/export/", views.card_export, name="cards-export"),
    path("cards/access/", views.card_access, name="card-access"),
    path("cards/import/", views.card_import, name="cards-import"),
    path("cards/import/<int:pk>/", views.card_import_detail, name="card-import"),
    path("cards/import/<int:pk>/<slug:decision>/", views.card_import_decide,
         name="card-import-decide"),
    path("cards/import/<int:pk>/rejections.csv", views.card_import_rejections,
         name="card-import-report"),
    path("cards/<int:pk>/", views.card_detail, name="card"),
    path("cards/<int:pk>/delete/", views.card_delete, name="card-delete"),
    path("local-lists/", views.local_list_overview, name="local-lists"),
    # Station ids may hold * : + | @ = (OCPP identifierString) but never a slash.
    path("local-lists/<str:station_id>/", views.local_list_detail, name="local-list"),
    path("local-lists/<str:station_id>/<slug:action>/", views.local_list_action,
         name="local-list-action"),
    path("audit/", views.audit_log, name="audit"),
    path("audit/export/", views.audit_export, name="audit-download"),
    path("members/", views.members, name="members"),
    path("members/<int:pk>/", views.member_change, name="member"),
    path("organizations/", views.organization_list, name="organizations"),
    path("organizations/<int:pk>/", views.organization_detail, name="organization"),
    path("organizations/sites/new/", views.site_new, name="site-new"),
    path("organizations/sites/<int:pk>/", views.site_edit, name="site-edit"),
]
