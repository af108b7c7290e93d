from django.urls import path

from billing.web import views

app_name = "billing"

urlpatterns = [
    path("", views.index, name="index"),
    path("tariffs/", views.tariff_list, name="tariffs"),
    path("tariffs/<int:pk>/", views.tariff_detail, name="tariff"),
    path("tariffs/<int:pk>/assign/", views.tariff_assign, name="tariff-assign"),
    path("tariffs/<int:pk>/assignments/<int:assignment>/remove/", views.tariff_unassign,
         name="tariff-unassign"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/<int:pk>/", views.session_detail, name="session"),
    path("sessions/<int:pk>/cost/", views.session_cost_fragment, name="session-cost"),
    path("invoices/", views.invoice_list, name="invoices"),
    path("invoices/export.csv", views.invoices_csv, name="invoices-csv"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice"),
    path("invoices/<int:pk>/<slug:action>/", views.invoice_action, name="invoice-action"),
    path("invoices/<int:pk>.<str:kind>", views.invoice_file, name="invoice-file"),
    path("revenue/", views.revenue, name="revenue"),
    path("details/", views.details, name="details"),
    path("details/customers/<int:pk>/", views.customer_details, name="customer"),
    path("exports/", views.export_list, name="exports"),
    path("exports/<int:pk>/", views.export_progress, name="export"),
    path("exports/<int:pk>/download/", views.export_download, name="export-download"),
]
